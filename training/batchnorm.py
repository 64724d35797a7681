"""Re-estimate a generator's batch-norm running statistics with the weights it has now.

The EMA generator averages the raw generator's running statistics along with its weights,
but statistics gathered under the raw weights do not describe the activations of the
averaged ones. Running random latents through the final weights in train mode, with a
cumulative average (momentum None), gives statistics that match them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.networks import NetworkSpec


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def reestimate(
    generator: nn.Module, spec: NetworkSpec, batches: int, batch_size: int, seed: int = 0
) -> int:
    """Replace the running statistics by their average over `batches` batches of random
    latents (and, when conditional, uniformly random one-hot classes); the generator is left
    in eval mode. Returns the batches used: 0 when there is no batch norm or `batches` is 0."""
    norms = batch_norms(generator)
    if batches <= 0 or not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch_size, spec.latent_dim, generator=rng).to(device)
        y = None
        if spec.conditional:
            labels = torch.randint(0, spec.num_classes, (batch_size,), generator=rng)
            y = F.one_hot(labels, spec.num_classes).float().to(device)
        generator(z, y)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    generator.eval()
    return batches
