"""`python -m training`: train a GAN generator. Values come from defaults < --config < flags.

One flag per `TrainConfig` field (`batch_size` -> `--batch-size`), with the field's type,
default and help, so the flags cannot drift from the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import types
import typing

from training import data
from training.checkpoint import CheckpointError
from training.config import LOSS_DEFAULTS, TrainConfig
from training.losses import LOSSES
from training.networks import ARCHITECTURES, IMAGE_SIZES

CHOICES: dict[str, tuple] = {"arch": ARCHITECTURES, "loss": LOSSES, "image_size": IMAGE_SIZES}


def default_text(f: dataclasses.Field) -> str:
    if any(f.name in per_loss for per_loss in LOSS_DEFAULTS.values()):
        return "depends on --loss: " + ", ".join(
            f"{loss} {values[f.name]:g}" for loss, values in LOSS_DEFAULTS.items()
        )
    if f.default is None:
        return f.metadata["shown"]
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    return str(f.default)


def value_type(annotation: object) -> type:
    """`int | None` -> int: None is what an absent flag means, never a value to type."""
    if isinstance(annotation, types.UnionType):
        (inner,) = [t for t in typing.get_args(annotation) if t is not type(None)]
        return inner
    return annotation  # type: ignore[return-value]


def add_flag(p: argparse.ArgumentParser, f: dataclasses.Field, kind: type) -> None:
    flag = "--" + f.name.replace("_", "-")
    text = f"{f.metadata['help']} (default: {default_text(f)})".replace("%", "%%")
    if kind is bool:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
    else:
        p.add_argument(flag, type=kind, choices=CHOICES.get(f.name), help=text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a DCGAN, conditional GAN or MLP GAN generator.",
        argument_default=argparse.SUPPRESS,  # unset flags fall through to the config file
    )
    p.add_argument(
        "--config", metavar="FILE", help="a .toml or .json file of these values (keys: a_b)"
    )
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        add_flag(p, f, value_type(hints[f.name]))
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
