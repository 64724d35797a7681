"""The recipes table reads every value from the model cards, and the loss image has one
panel per run, side by side (no training: fake cards and losses.csv files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from service.card import Metrics, ModelCard, Training
from training import recipes
from training.plots import plot_losses

PANEL_PX = 240  # plot_loss_panels' default panel size, 3 x 3 inches at 80 dpi
CLASSES = [f"class-{i}" for i in range(10)]
LOSSES_HEADER = "epoch,step,d_loss,g_loss,d_real,d_fake,images_per_s"


def make_model(folder: Path, arch: str, loss: str, spectral_norm: bool = False, **metrics):
    """A model folder holding only a card (the table never opens model.onnx)."""
    conditional = arch == "cgan"
    measured = Metrics(
        evaluator="test",
        samples=100,
        fd=1.0,
        fd_floor=0.5,
        diversity_ok=True,
        per_class_accuracy=[metrics["class_accuracy"]] * 10 if conditional else None,
        **metrics,
    )
    card = ModelCard(
        name=folder.name,
        architecture=arch,
        dataset="fashion-mnist",
        image={"channels": 1, "height": 28, "width": 28},
        latent_dim=100,
        class_names=CLASSES if conditional else [],
        input_names=["z", "y"] if conditional else ["z"],
        sha256="0" * 64,
        parameters=1_193_825,
        training=Training(
            command=f"python -m training --arch {arch} --loss {loss} --out runs/{folder.name}",
            epochs=2,
            loss=loss,
            wall_time_s=1866.2,
            device="cpu",
            spectral_norm=spectral_norm,
        ),
        metrics=measured,
    )
    folder.mkdir(parents=True)
    card.save(folder)
    return folder


def make_run(folder: Path, rows: int = 5) -> Path:
    folder.mkdir(parents=True)
    lines = [LOSSES_HEADER]
    lines += [f"1,{1 + 10 * i},{1.4 - 0.1 * i},{0.7 + 0.1 * i},0.5,-0.5,100.0" for i in range(rows)]
    (folder / "losses.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def three(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    models = [
        make_model(
            tmp_path / "m-mlp", "mlp", "bce", fd_ratio=120.5, diversity=0.5, coverage_tvd=0.2
        ),
        make_model(
            tmp_path / "m-cgan-hinge",
            "cgan",
            "hinge",
            True,
            fd_ratio=65.45,
            diversity=0.861,
            coverage_tvd=0.0162,
            class_accuracy=0.8836,
        ),
        make_model(
            tmp_path / "m-cgan-wgan",
            "cgan",
            "wgan-gp",
            fd_ratio=99.0,
            diversity=0.9,
            coverage_tvd=0.03,
            class_accuracy=0.5,
        ),
    ]
    runs = [make_run(tmp_path / f"run-{i}") for i in range(3)]
    return models, runs


def body_rows(table: str) -> list[list[str]]:
    lines = table.strip().splitlines()
    assert lines[0].startswith("| recipe | FD / floor | class accuracy |")
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_table_has_one_row_per_model_with_the_values_of_its_card(three) -> None:
    models, _ = three
    cards = [ModelCard.load(m) for m in models]
    rows = body_rows(recipes.markdown_table(cards))
    assert len(rows) == 3 and all(len(r) == len(recipes.COLUMNS) for r in rows)
    assert [r[0] for r in rows] == ["MLP BCE", "cGAN hinge + SN", "cGAN WGAN-GP"]
    assert rows[0][1:5] == ["120.50", "–", "0.2000", "0.500"]  # unconditional: no accuracy
    assert rows[1][1:5] == ["65.45", "0.8836", "0.0162", "0.861"]
    assert rows[2][1:5] == ["99.00", "0.5000", "0.0300", "0.900"]
    assert rows[1][5:] == ["1.19 M", "2", "31.1", "cpu"]


def test_unevaluated_card_shows_dashes_instead_of_failing(three) -> None:
    card = ModelCard.load(three[0][1]).model_copy(update={"metrics": None})
    assert recipes.table_row(card)[1:5] == ["–"] * 4


def test_cli_prints_table_and_commands_and_draws_one_panel_per_run(three, tmp_path, capsys):
    models, runs = three
    png = tmp_path / "docs" / "losses.png"
    args = [*map(str, models), "--runs", *map(str, runs), "--image", str(png), "--markdown"]
    assert recipes.main(args) == 0
    out = capsys.readouterr().out
    assert len(body_rows(out.split("\n\n")[0])) == 3
    for m in models:
        assert f"python -m training --arch {ModelCard.load(m).architecture}" in out
        assert f"--out runs/{m.name}\n" in out
    assert "```bash" in out and f"![loss curves]({png.as_posix()})" in out

    with Image.open(png) as image:
        image.verify()
    assert Image.open(png).size == (3 * PANEL_PX, PANEL_PX)

    # Width grows with the panel count: one model, one run, one panel.
    single = tmp_path / "single.png"
    assert recipes.main([str(models[0]), "--runs", str(runs[0]), "--image", str(single)]) == 0
    assert Image.open(single).size == (PANEL_PX, PANEL_PX)


def test_run_count_must_match_model_count(three, tmp_path, capsys) -> None:
    models, runs = three
    png = tmp_path / "x.png"
    assert recipes.main([*map(str, models), "--runs", str(runs[0]), "--image", str(png)]) == 2
    assert "1 run folders for 3 models" in capsys.readouterr().err and not png.exists()


def test_single_run_plot_still_draws_losses_and_logits(tmp_path) -> None:
    run = make_run(tmp_path / "run")
    plot_losses(run / "losses.csv", tmp_path / "losses.png")
    assert Image.open(tmp_path / "losses.png").size == (800, 600)
