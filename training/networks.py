"""Generators and discriminators: DCGAN, class-conditional DCGAN (cGAN) and the MLP baseline.

Every generator maps `z` [N, latent_dim] (and, when conditional, a class vector `y`
[N, num_classes], one-hot or a mixture) to images [N, C, H, W] in [-1, 1] via tanh.
Every discriminator returns one logit per image [N].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

ARCHITECTURES = ("dcgan", "cgan", "mlp")
IMAGE_SIZES = (28, 32, 64)


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild a generator/discriminator pair (stored in checkpoints)."""

    arch: str = "dcgan"
    channels: int = 1
    image_size: int = 28
    latent_dim: int = 100
    num_classes: int = 0
    width: int = 64  # base feature width: G's last hidden layer, D's first
    embed_dim: int = 64  # cGAN: size of the learned class embedding in G
    spectral_norm: bool = False
    batch_norm_d: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {ARCHITECTURES}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image size {self.image_size} unsupported; use {IMAGE_SIZES}")
        if self.arch == "cgan" and self.num_classes < 2:
            raise ValueError("the cgan arch needs a labelled data set (2+ classes)")

    @property
    def conditional(self) -> bool:
        return self.arch == "cgan" or (self.arch == "mlp" and self.num_classes > 0)


def _upsampling_plan(image_size: int) -> tuple[int, int]:
    """(starting feature-map side, number of 2x upsamplings) for each supported size."""
    return {28: (7, 2), 32: (4, 3), 64: (4, 4)}[image_size]


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN paper init: conv and linear weights N(0, 0.02); batch-norm scale N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConvGenerator(nn.Module):
    """latent (+ class embedding) -> s x s map -> [ConvT 4/2, BN, ReLU] x k -> conv -> tanh."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        side, ups = _upsampling_plan(spec.image_size)
        top = spec.width * 2**ups
        in_dim = spec.latent_dim
        self.embed = None
        if spec.conditional:
            self.embed = nn.Linear(spec.num_classes, spec.embed_dim, bias=False)
            in_dim += spec.embed_dim
        self.side, self.top = side, top
        self.project = nn.Sequential(
            nn.Linear(in_dim, top * side * side, bias=False),
            nn.Unflatten(1, (top, side, side)),
            nn.BatchNorm2d(top),
            nn.ReLU(True),
        )
        blocks: list[nn.Module] = []
        width = top
        for _ in range(ups):
            blocks += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        blocks += [nn.Conv2d(width, spec.channels, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.body(self.project(z))


class ConvDiscriminator(nn.Module):
    """[Conv 4/2, (BN), LeakyReLU 0.2] x k -> linear logit; cGAN adds a projection term.

    The projection discriminator (Miyato & Koyama, 2018) scores <embed(y), features>,
    which accepts soft class vectors as well as one-hot ones.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        wrap = spectral_norm if spec.spectral_norm else (lambda m: m)
        use_bn = spec.batch_norm_d and not spec.spectral_norm
        _, ups = _upsampling_plan(spec.image_size)
        layers: list[nn.Module] = []
        width_in, width = spec.channels, spec.width
        for i in range(ups + (1 if spec.image_size == 28 else 0)):
            layers.append(wrap(nn.Conv2d(width_in, width, 4, 2, 1, bias=not use_bn or i == 0)))
            if use_bn and i > 0:  # no batch norm on the input layer (DCGAN paper)
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, True))
            width_in, width = width, width * 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            size = spec.image_size
            n_features = self.features(torch.zeros(2, spec.channels, size, size)).shape[1]
        self.logit = wrap(nn.Linear(n_features, 1))
        self.project = None
        if spec.conditional:
            self.project = wrap(nn.Linear(spec.num_classes, n_features, bias=False))
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.logit(h).squeeze(1)
        if self.project is not None:
            out = out + (self.project(y) * h).sum(dim=1)
        return out


class MLPGenerator(nn.Module):
    """The vanilla fully connected GAN: 256-512-1024, leaky ReLU, batch norm, tanh."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        in_dim = spec.latent_dim + (spec.num_classes if spec.conditional else 0)
        self.shape = (spec.channels, spec.image_size, spec.image_size)
        layers: list[nn.Module] = []
        for width in (256, 512, 1024):
            layers += [nn.Linear(in_dim, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2, True)]
            in_dim = width
        layers += [nn.Linear(in_dim, spec.channels * spec.image_size**2), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.spec.conditional:
            z = torch.cat([z, y], dim=1)
        return self.body(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        wrap = spectral_norm if spec.spectral_norm else (lambda m: m)
        in_dim = spec.channels * spec.image_size**2
        in_dim += spec.num_classes if spec.conditional else 0
        self.body = nn.Sequential(
            nn.Flatten(),
            wrap(nn.Linear(in_dim, 512)),
            nn.LeakyReLU(0.2, True),
            wrap(nn.Linear(512, 256)),
            nn.LeakyReLU(0.2, True),
            wrap(nn.Linear(256, 1)),
        )
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if self.spec.conditional:
            x = torch.cat([x, y], dim=1)
        return self.body(x).squeeze(1)


def build(spec: NetworkSpec) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for a spec."""
    if spec.arch == "mlp":
        return MLPGenerator(spec), MLPDiscriminator(spec)
    return ConvGenerator(spec), ConvDiscriminator(spec)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
