"""What crosses the hop to the batching service: one row per image, in plain NumPy arrays.

BentoML pickles arrays between services with out-of-band buffers and concatenates
batchable inputs along axis 0, so an array per request costs almost nothing per image
(a dict per image cost ~0.2 ms of CPU each) and the batch size BentoML sees is in images.

    request row (float64): [model index, enqueue time, z (latent_dim), y (num_classes)]
    answer row  (uint8):   the image's C*H*W pixels

Rows are zero-padded to the widest model. float64 keeps the wall-clock enqueue time exact;
z and y are float32 values, so the round trip through float64 is lossless.
"""

from __future__ import annotations

import numpy as np

from service.card import ModelCard


def request_width(cards: list[ModelCard]) -> int:
    return 2 + max(c.latent_dim + c.num_classes for c in cards)


def answer_width(cards: list[ModelCard]) -> int:
    return max(c.image.channels * c.image.height * c.image.width for c in cards)


def pack_request(
    index: int, card: ModelCard, z: np.ndarray, y: np.ndarray | None, t: float, width: int
) -> np.ndarray:
    rows = np.zeros((len(z), width), dtype=np.float64)
    rows[:, 0] = index
    rows[:, 1] = t
    rows[:, 2 : 2 + card.latent_dim] = z
    if y is not None:
        start = 2 + card.latent_dim
        rows[:, start : start + card.num_classes] = y
    return rows


def split_request(
    rows: np.ndarray, cards: list[ModelCard]
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]]:
    """Per model present: (model index, row positions, z float32, y float32 | None, times)."""
    groups = []
    indices = rows[:, 0].astype(np.int64)
    for index in np.unique(indices):
        card = cards[int(index)]
        where = np.flatnonzero(indices == index)
        part = rows[where]
        z = np.ascontiguousarray(part[:, 2 : 2 + card.latent_dim], dtype=np.float32)
        y = None
        if card.conditional:
            start = 2 + card.latent_dim
            y = np.ascontiguousarray(part[:, start : start + card.num_classes], dtype=np.float32)
        groups.append((int(index), where, z, y, part[:, 1]))
    return groups


def pack_answer(images: np.ndarray, width: int) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    if flat.shape[1] == width:
        return flat
    out = np.zeros((len(images), width), dtype=np.uint8)
    out[:, : flat.shape[1]] = flat
    return out


def unpack_answer(rows: np.ndarray, card: ModelCard) -> np.ndarray:
    im = card.image
    size = im.channels * im.height * im.width
    return np.ascontiguousarray(rows[:, :size]).reshape(len(rows), im.channels, im.height, im.width)
