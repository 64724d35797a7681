"""An RGB image folder at 32 and 64 px, end to end: train, export, classifier, evaluate, serve.

Three classes of coloured shapes drawn with Pillow stand in for a user's own data set. The
exported models are served beside copies of the shipped ones, and every image route must
answer with RGB images of the model's size.
"""

from __future__ import annotations

import base64
import io
import shlex
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import requests
from PIL import Image, ImageDraw

from harness import MODELS_DIR
from harness.live_server import LiveServer
from service.card import MODEL_FILE, ModelCard
from service.registry import model_folders
from training import classifier, evaluate, export
from training.classifier_card import ClassifierCard, NoClassifierError, find_classifier
from training.cli import main as train_main

pytestmark = [pytest.mark.train, pytest.mark.serve]

CLASSES = ("blue-triangle", "green-square", "red-circle")  # sorted: the folder's class order
PER_CLASS = 60
SIZES = (32, 64)


def draw_shapes(root: Path, seed: int = 0) -> Path:
    """PER_CLASS images per class: one shape of the class's colour, random place and size."""
    rng = np.random.default_rng(seed)
    colours = {"blue-triangle": (40, 60, 230), "green-square": (40, 200, 60),
               "red-circle": (230, 40, 40)}  # fmt: skip
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            image = Image.new("RGB", (48, 48), tuple(int(v) for v in rng.integers(0, 60, 3)))
            pen = ImageDraw.Draw(image)
            r = int(rng.integers(9, 18))
            cx, cy = (int(v) for v in rng.integers(r + 2, 46 - r, 2))
            box = (cx - r, cy - r, cx + r, cy + r)
            if name == "red-circle":
                pen.ellipse(box, fill=colours[name])
            elif name == "green-square":
                pen.rectangle(box, fill=colours[name])
            else:
                pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colours[name])
            image.save(root / name / f"{i:03d}.png")
    return root


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def grid_side(n: int, size: int, padding: int = 2) -> int:
    """Side of service.imaging.make_grid's near-square grid of n square images."""
    columns = int(np.ceil(np.sqrt(n)))
    return columns * (size + padding) + padding


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A models dir: copies of every shipped model folder plus shapes-32 and shapes-64."""
    tmp = tmp_path_factory.mktemp("any-shape")
    shapes = draw_shapes(tmp / "shapes")
    models = tmp / "models"
    for folder in model_folders(MODELS_DIR):
        shutil.copytree(folder, models / folder.name)
    for size in SIZES:
        run = tmp / f"run-{size}"
        args = ["--arch", "cgan", "--dataset", f"folder:{shapes}", "--image-size", str(size),
                "--epochs", "1", "--batch-size", "30", "--width", "8", "--grid-size", "9",
                "--threads", "1", "--out", str(run)]  # fmt: skip
        assert train_main(args) == 0
        name = f"shapes-{size}"
        assert export.main([str(run / "checkpoint.pt"), str(models / name), "--name", name,
                            "--bn-batches", "4"]) == 0  # fmt: skip
    return {"root": tmp, "shapes": shapes, "models": models}


def test_classifier_and_evaluation_for_an_rgb_folder(exported, capsys) -> None:
    classifiers, models = exported["root"] / "evaluation", exported["models"]
    card32, card64 = (ModelCard.load(models / f"shapes-{s}") for s in SIZES)
    assert card32.image.channels == 3 and card32.class_names == list(CLASSES)

    # No classifier yet: the error names the exact command, which then makes the right one.
    with pytest.raises(NoClassifierError) as missing:
        find_classifier(card32, classifiers)
    command = str(missing.value).splitlines()[-1].strip()
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "training.classifier"]
    assert classifier.main([*words[3:], "--epochs", "3", "--batch-size", "16"]) == 0
    folder = find_classifier(card32, classifiers)
    made = ClassifierCard.load(folder)
    assert made.image == card32.image and made.class_names == list(CLASSES)
    assert made.train_images + made.test_images == len(CLASSES) * PER_CLASS
    assert made.test_accuracy > 0.8  # colour alone separates the classes
    with pytest.raises(NoClassifierError, match="--image-size 64"):
        find_classifier(card64, classifiers)  # a 32 px classifier cannot measure 64 px images

    assert evaluate.main([str(models / "shapes-32"), "--samples", "150",
                          "--classifiers", str(classifiers)]) == 0  # fmt: skip
    assert "coverage TVD vs uniform" in capsys.readouterr().out
    metrics = ModelCard.load(models / "shapes-32").metrics
    assert metrics is not None and metrics.samples == 150
    assert metrics.evaluator.startswith(folder.name)
    assert metrics.fd_floor > 0 and len(metrics.per_class_accuracy) == len(CLASSES)
    # Requested classes are balanced, but after a few steps any predicted mix is possible:
    # the bounds of a total variation distance from uniform over three classes are what hold.
    assert 0 <= metrics.coverage_tvd <= 1 - 1 / len(CLASSES)


def test_rgb_models_of_any_size_serve_beside_the_shipped_ones(exported) -> None:
    models = exported["models"]
    with LiveServer(models_dir=models) as server:
        listed = requests.get(f"{server.url}/models", timeout=30).json()["models"]
        names = {m["name"] for m in listed}
        assert {f"shapes-{s}" for s in SIZES} | {f.name for f in model_folders(MODELS_DIR)} <= names
        for size in SIZES:
            name = f"shapes-{size}"
            card = ModelCard.load(models / name)
            post = {"model": name, "seed": 3}
            grid = requests.post(f"{server.url}/generate", json={**post, "n": 4}, timeout=60)
            assert grid.status_code == 200, grid.text
            image = decode(grid.content)
            assert image.mode == "RGB" and image.size == (grid_side(4, size),) * 2

            got = requests.get(f"{server.url}/image/{name}?n=9&seed=3", timeout=60)
            assert got.status_code == 200, got.text
            assert decode(got.content).size == (grid_side(9, size),) * 2

            answer = requests.post(f"{server.url}/samples", json={**post, "n": 3}, timeout=60)
            assert answer.status_code == 200, answer.text
            session = ort.InferenceSession(
                str(models / name / MODEL_FILE), providers=["CPUExecutionProvider"]
            )
            for i, sample in enumerate(answer.json()["images"]):
                tile = decode(base64.b64decode(sample["image"]))
                assert tile.mode == "RGB" and tile.size == (size, size)
                z = np.random.default_rng(3 + i).standard_normal(card.latent_dim, np.float32)
                y = np.eye(card.num_classes, dtype=np.float32)[[i % card.num_classes]]
                (x,) = session.run(["image"], {"z": z[None], "y": y})
                expected = np.clip(np.rint((x[0] + 1) * 127.5), 0, 255).transpose(1, 2, 0)
                assert np.abs(np.asarray(tile, np.int16) - expected).max() <= 1

            for fmt in ("png", "gif"):
                ends = {"start": {"seed": 1, "label": 0}, "end": {"seed": 2, "label": "red-circle"}}
                body = {"model": name, **ends, "steps": 4, "format": fmt}
                strip = requests.post(f"{server.url}/interpolate", json=body, timeout=60)
                assert strip.status_code == 200, strip.text
                image = decode(strip.content)
                if fmt == "png":  # one row of 4 frames, 2 px gaps
                    assert image.mode == "RGB" and image.size == (4 * (size + 2) + 2, size + 4)
                else:
                    assert image.size == (size, size) and image.n_frames > 1
        fashion = requests.post(
            f"{server.url}/generate", json={"model": "fashion-cgan"}, timeout=60
        )
        assert fashion.status_code == 200
        assert decode(fashion.content).mode == "L"
