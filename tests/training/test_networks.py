"""Shapes and ranges for every architecture, image size and channel count."""

import pytest
import torch

from training.networks import IMAGE_SIZES, NetworkSpec, build, count_parameters


@pytest.mark.parametrize("arch", ["dcgan", "cgan", "mlp"])
@pytest.mark.parametrize("size", IMAGE_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(arch: str, size: int, channels: int) -> None:
    spec = NetworkSpec(
        arch=arch, channels=channels, image_size=size, latent_dim=16, num_classes=10, width=8
    )
    generator, discriminator = build(spec)
    z = torch.randn(3, 16)
    y = torch.eye(10)[[0, 4, 9]] if spec.conditional else None
    images = generator(z, y)
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert discriminator(images, y).shape == (3,)


def test_cgan_accepts_a_class_mixture_and_it_changes_the_output() -> None:
    spec = NetworkSpec(arch="cgan", image_size=28, latent_dim=16, num_classes=10, width=8)
    generator, _ = build(spec)
    generator.eval()
    z = torch.randn(1, 16).repeat(3, 1)
    y = torch.zeros(3, 10)
    y[0, 7] = 1.0
    y[1, 5] = 1.0
    y[2, 5] = y[2, 7] = 0.5
    out = generator(z, y)
    assert not torch.allclose(out[0], out[1])
    # A linear class embedding makes the 50/50 mixture's input exactly halfway between.
    assert not torch.allclose(out[2], out[0]) and not torch.allclose(out[2], out[1])


def test_dcgan_weight_init_and_spectral_norm() -> None:
    spec = NetworkSpec(arch="dcgan", image_size=32, channels=3, width=8, spectral_norm=True)
    generator, discriminator = build(spec)
    conv = generator.body[0]
    assert abs(conv.weight.std().item() - 0.02) < 0.005
    assert any("parametrizations" in name for name, _ in discriminator.named_parameters())
    assert count_parameters(generator) > 0


def test_bad_specs_are_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="image size"):
        NetworkSpec(image_size=48)
    with pytest.raises(ValueError, match="unknown arch"):
        NetworkSpec(arch="stylegan")
    with pytest.raises(ValueError, match="labelled"):
        NetworkSpec(arch="cgan", num_classes=0)
