"""`python -m training`: train a GAN generator. Values come from defaults < --config < flags."""

from __future__ import annotations

import argparse
import shlex
import sys

from training import data
from training.checkpoint import CheckpointError
from training.config import TrainConfig
from training.losses import LOSSES
from training.networks import ARCHITECTURES, IMAGE_SIZES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a DCGAN, conditional GAN or MLP GAN generator.",
        argument_default=argparse.SUPPRESS,  # unset flags fall through to the config file
    )
    p.add_argument("--config", help="a .toml or .json file of TrainConfig values")
    p.add_argument("--arch", choices=ARCHITECTURES)
    p.add_argument("--loss", choices=LOSSES)
    p.add_argument("--dataset", help=f"one of {', '.join(data.DATASETS)}")
    p.add_argument("--data-root", help="where data sets live (Fashion-MNIST: its IDX folder)")
    p.add_argument("--download", action="store_true", help="fetch MNIST/SVHN/CIFAR-10")
    p.add_argument("--limit", type=int, help="train on the first N images only")
    p.add_argument("--image-size", type=int, choices=IMAGE_SIZES)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (split across ranks)")
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-d", type=float, help="discriminator learning rate (default: --lr)")
    p.add_argument("--beta1", type=float)
    p.add_argument("--beta2", type=float)
    p.add_argument("--latent-dim", type=int)
    p.add_argument("--width", type=int, help="base feature width of G and D")
    p.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction)
    p.add_argument("--n-critic", type=int)
    p.add_argument("--gp-weight", type=float)
    p.add_argument("--ema-decay", type=float, help="0 disables the EMA generator")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 on CUDA")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", help="run folder for checkpoint, grids and losses")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--log-every", type=int)
    return p


def config_from_args(argv: list[str]) -> TrainConfig:
    args = vars(parser().parse_args(argv))
    values = TrainConfig.from_file(args.pop("config")) if "config" in args else {}
    values.update(args)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg = config_from_args(argv)
    from training.trainer import Trainer  # torch import after argument errors are reported

    try:
        Trainer(cfg, command=shlex.join(["python", "-m", "training", *argv])).run()
    except (data.DatasetError, CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
