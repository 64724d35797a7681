"""GAN objectives: non-saturating BCE with one-sided label smoothing, hinge, and WGAN-GP.

Each loss is a pair of functions over discriminator logits; WGAN-GP adds a gradient
penalty computed by `gradient_penalty`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge", "wgan-gp")
REAL_LABEL = 0.9  # one-sided label smoothing (Salimans et al., 2016), as in the seed tutorials


@dataclass(frozen=True)
class GanLoss:
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(
        real, torch.full_like(real, REAL_LABEL)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def _bce_g(fake: torch.Tensor) -> torch.Tensor:
    # non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _wasserstein_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()


def _critic_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def get(name: str) -> GanLoss:
    if name == "bce":
        return GanLoss(_bce_d, _bce_g)
    if name == "hinge":
        return GanLoss(_hinge_d, _critic_g)
    if name == "wgan-gp":
        return GanLoss(_wasserstein_d, _critic_g)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def gradient_penalty(
    discriminator: torch.nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al., 2017): (||grad D(x_hat)|| - 1)^2 on real/fake mixes."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = discriminator(mixed, y)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
