"""Each loss computes a finite value and backpropagates into both networks."""

import pytest
import torch

from training import losses
from training.networks import NetworkSpec, build


@pytest.mark.parametrize("name", losses.LOSSES)
def test_loss_backpropagates(name: str) -> None:
    torch.manual_seed(0)
    spec = NetworkSpec(
        arch="cgan",
        image_size=28,
        latent_dim=16,
        num_classes=10,
        width=8,
        batch_norm_d=name != "wgan-gp",
    )
    generator, discriminator = build(spec)
    loss = losses.get(name)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    y = torch.eye(10)[[1, 2, 3, 4]]
    fake = generator(torch.randn(4, 16), y)

    d_loss = loss.discriminator(discriminator(real, y), discriminator(fake.detach(), y))
    if name == "wgan-gp":
        d_loss = d_loss + 10 * losses.gradient_penalty(discriminator, real, fake.detach(), y)
    d_loss.backward()
    assert torch.isfinite(d_loss)
    d_grads = [p.grad for p in discriminator.parameters() if p.grad is not None]
    assert d_grads and all(torch.isfinite(g).all() for g in d_grads)
    assert any(g.abs().sum() > 0 for g in d_grads)

    g_loss = loss.generator(discriminator(fake, y))
    g_loss.backward()
    assert torch.isfinite(g_loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_bce_uses_one_sided_label_smoothing() -> None:
    confident = torch.full((8,), 20.0)
    # With real label 0.9, a discriminator that is certain on real data still pays a loss.
    assert losses.get("bce").discriminator(confident, -confident) > 0.3


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    class Linear(torch.nn.Module):
        def forward(self, x, y=None):
            return x.flatten(1)[:, 0]  # gradient is a unit vector everywhere

    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    assert losses.gradient_penalty(Linear(), real, fake).item() == pytest.approx(0.0, abs=1e-6)


def test_unknown_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("lsgan")
