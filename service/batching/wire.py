"""What crosses the hop to the batching service: one NumPy row per image.

    request row (float64): [model index, enqueue time, z (latent_dim), y (num_classes)]
    answer row  (uint8):   the image's C*H*W pixels

Rows are zero-padded to the widest model. An array per request lets BentoML concatenate
requests along axis 0, so the batch size it sees is in images; float64 keeps the wall-clock
enqueue time exact and holds float32 z and y losslessly. Both sides build the format from
the same registry, so model indices agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.card import ModelCard


@dataclass(frozen=True)
class RequestGroup:
    """The rows of one model inside a merged batch."""

    model: str
    where: np.ndarray  # row positions in the batch
    z: np.ndarray  # [n, latent_dim] float32
    y: np.ndarray | None  # [n, num_classes] float32; None for unconditional models
    enqueued_at: np.ndarray  # wall-clock time each row was packed


class WireFormat:
    """Packs and unpacks rows for a fixed list of model cards (the registry's order)."""

    def __init__(self, cards: list[ModelCard]) -> None:
        self.cards = list(cards)
        self.index = {card.name: i for i, card in enumerate(self.cards)}
        self.request_width = 2 + max(c.latent_dim + c.num_classes for c in self.cards)
        self.answer_width = max(c.image.channels * c.image.height * c.image.width for c in cards)

    def pack_request(self, model: str, z: np.ndarray, y: np.ndarray | None, t: float) -> np.ndarray:
        card = self.cards[self.index[model]]
        rows = np.zeros((len(z), self.request_width), dtype=np.float64)
        rows[:, 0] = self.index[model]
        rows[:, 1] = t
        rows[:, 2 : 2 + card.latent_dim] = z
        if y is not None:
            start = 2 + card.latent_dim
            rows[:, start : start + card.num_classes] = y
        return rows

    def split_request(self, rows: np.ndarray) -> list[RequestGroup]:
        """A merged batch of request rows -> one group per model present."""
        groups = []
        indices = rows[:, 0].astype(np.int64)
        for index in np.unique(indices):
            card = self.cards[int(index)]
            where = np.flatnonzero(indices == index)
            part = rows[where]
            z = np.ascontiguousarray(part[:, 2 : 2 + card.latent_dim], dtype=np.float32)
            y = None
            if card.conditional:
                start = 2 + card.latent_dim
                y = np.ascontiguousarray(
                    part[:, start : start + card.num_classes], dtype=np.float32
                )
            groups.append(RequestGroup(card.name, where, z, y, part[:, 1]))
        return groups

    def pack_answer(self, images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), -1)
        if flat.shape[1] == self.answer_width:
            return flat
        out = np.zeros((len(images), self.answer_width), dtype=np.uint8)
        out[:, : flat.shape[1]] = flat
        return out

    def unpack_answer(self, rows: np.ndarray, model: str) -> np.ndarray:
        im = self.cards[self.index[model]].image
        size = im.channels * im.height * im.width
        pixels = np.ascontiguousarray(rows[:, :size])
        return pixels.reshape(len(rows), im.channels, im.height, im.width)
