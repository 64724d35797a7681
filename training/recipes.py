"""Compare training recipes from their model cards: a markdown results table, the command that
reproduces each row, and (given the run folders) their loss curves side by side in one PNG.

    python -m training.recipes MODEL_FOLDER... [--runs RUN_FOLDER...] [--image PNG] [--markdown]

Everything printed comes from the cards (`service.card`), so the table is regenerated, never
typed: re-evaluate a model and rerun this.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from service.card import ModelCard

ARCH_LABELS = {"mlp": "MLP", "dcgan": "DCGAN", "cgan": "cGAN"}
LOSS_LABELS = {"bce": "BCE", "hinge": "hinge", "wgan-gp": "WGAN-GP"}
COLUMNS = (
    "recipe", "FD / floor", "class accuracy", "coverage TVD", "diversity",
    "parameters", "epochs", "wall time (min)", "device",
)  # fmt: skip
DASH = "–"  # what the README's tables print for "does not apply"


def recipe_label(card: ModelCard) -> str:
    t = card.training
    arch = ARCH_LABELS.get(card.architecture, card.architecture)
    label = f"{arch} {LOSS_LABELS.get(t.loss, t.loss)}".strip()
    return label + " + SN" if t.spectral_norm else label


def _number(value: float | None, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def table_row(card: ModelCard) -> list[str]:
    t = card.training
    # An unevaluated card still gets its row (with dashes), so a missing evaluation shows.
    m = card.metrics.model_dump() if card.metrics else {}
    return [
        recipe_label(card),
        _number(m.get("fd_ratio"), 2),
        _number(m.get("class_accuracy"), 4),  # None for unconditional models
        _number(m.get("coverage_tvd"), 4),
        _number(m.get("diversity"), 3),
        f"{card.parameters / 1e6:.2f} M",
        str(t.epochs),
        f"{t.wall_time_s / 60:.1f}",
        t.device or DASH,
    ]


def markdown_table(cards: Sequence[ModelCard]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_row(card)) + " |" for card in cards]
    return "\n".join(lines)


def commands(cards: Sequence[ModelCard]) -> list[str]:
    return [card.training.command or f"# {card.name}: no command in its card" for card in cards]


def loss_image(cards: Sequence[ModelCard], runs: Sequence[Path], png_path: Path) -> None:
    # Imported here: matplotlib is slow to load and only the image needs it.
    from training.plots import plot_loss_panels

    if len(runs) != len(cards):
        raise ValueError(f"{len(runs)} run folders for {len(cards)} models (same order, one each)")
    panels = [(recipe_label(c), Path(r) / "losses.csv") for c, r in zip(cards, runs, strict=True)]
    png_path.parent.mkdir(parents=True, exist_ok=True)
    plot_loss_panels(panels, png_path)


def report(cards: Sequence[ModelCard], image: Path | None = None, markdown: bool = False) -> str:
    """The table, then the commands: plain lines, or with --markdown a README-ready block."""
    parts = [markdown_table(cards), ""]
    if markdown:
        if image is not None:
            parts += [f"![loss curves]({image.as_posix()})", ""]
        parts += ["```bash", *commands(cards), "```"]
    else:
        parts += commands(cards)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.recipes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="+", type=Path, help="exported model folders (card.json)")
    p.add_argument("--runs", nargs="*", type=Path, default=[], help="their run folders, same order")
    p.add_argument(
        "--image",
        type=Path,
        default=Path("docs/recipes-losses.png"),
        help="where the loss curves go, when --runs is given (default: %(default)s)",
    )
    p.add_argument("--markdown", action="store_true", help="print a README-ready section body")
    args = p.parse_args(argv)
    cards = [ModelCard.load(folder) for folder in args.models]
    image = None
    if args.runs:
        try:
            loss_image(cards, args.runs, args.image)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        image = args.image
    print(report(cards, image, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
