"""Model inputs for a card: the feeds of one `session.run`, built the way /generate builds them.

Latents follow `service.latents` (image i from seed + i). A conditional model gets one-hot
class vectors: all of class `label`, or, without a label, cycling through the classes as a
/generate grid does. One place for the service's warm-up, the benchmarks and the tests.
"""

from __future__ import annotations

import numpy as np

from service.card import ModelCard
from service.latents import Label, class_vector, latents_from_seed


def model_inputs(
    card: ModelCard, n: int, seed: int = 0, label: Label | None = None, truncation: float = 1.0
) -> dict[str, np.ndarray]:
    """{"z": [n, latent_dim]} plus, for a conditional model, {"y": [n, num_classes]}."""
    feeds = {"z": latents_from_seed(seed, n, card.latent_dim, truncation)}
    if card.conditional:
        if label is None:
            feeds["y"] = np.eye(card.num_classes, dtype=np.float32)[
                [i % card.num_classes for i in range(n)]
            ]
        else:
            feeds["y"] = np.tile(class_vector(label, card.class_names), (n, 1))
    return feeds
