"""The generators in models/: integrity, contract, and a quality regression check.

Every check runs on whatever folders the models directory holds (any data set, image size
and channel count). `GAN_MODELS_DIR` points them at another directory, as it does the
service: `GAN_MODELS_DIR=/tmp/models pytest tests/service/test_shipped_models.py`.
"""

import json
import os
from pathlib import Path

import onnxruntime as ort
import pytest
from pydantic import ValidationError

from harness import MODELS_DIR
from service.card import CARD_FILE, MODEL_FILE, ModelCard, sha256_of
from service.inputs import model_inputs
from service.registry import model_folders
from training.classifier_card import find_classifier
from training.evaluate import Evaluator, generate

MODELS = Path(os.environ.get("GAN_MODELS_DIR") or MODELS_DIR)
FOLDERS = [folder.name for folder in model_folders(MODELS)]
QUALITY_SAMPLES = 2000
_evaluators: dict[Path, Evaluator] = {}  # one per classifier; its reference set is slow to make


def evaluator_for(card: ModelCard) -> Evaluator:
    folder = find_classifier(card)  # raises with the command that trains a missing one
    if folder not in _evaluators:
        _evaluators[folder] = Evaluator(classifier=folder)
    return _evaluators[folder]


def test_models_dir_holds_models_named_as_their_folders() -> None:
    assert FOLDERS, f"no model folders in {MODELS}"
    for name in FOLDERS:
        assert ModelCard.load(MODELS / name).name == name


@pytest.mark.parametrize("name", FOLDERS)
def test_shipped_model_matches_its_card(name: str) -> None:
    folder = MODELS / name
    card = ModelCard.load(folder)
    assert sha256_of(folder / MODEL_FILE) == card.sha256
    assert (folder / MODEL_FILE).stat().st_size <= 20e6
    assert card.training.epochs > 0 and card.training.command.startswith("python -m training")
    metrics = card.metrics
    assert metrics is not None and metrics.fd_ratio > 1 and metrics.diversity_ok
    assert (metrics.class_accuracy is not None) == card.conditional
    assert metrics.coverage_tvd is not None
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == card.input_names
    for batch in (1, 5):
        feed = model_inputs(card, batch, seed=batch)
        (image,) = session.run(card.output_names, feed)
        assert image.shape == (batch, card.image.channels, card.image.height, card.image.width)
        low, high = card.output_range
        # ONNX Runtime's vectorised tanh may overshoot ±1 by an ulp; the service clips anyway
        assert image.min() >= low - 1e-6 and image.max() <= high + 1e-6
        assert image.std() > 0.1  # not a constant image


@pytest.mark.parametrize("name", FOLDERS)
def test_quality_stays_near_its_card(name: str) -> None:
    """Fresh samples through the model's classifier: class accuracy within 5 points and
    class coverage within 0.05 of the card (FD is left out: it is biased by sample count)."""
    folder = MODELS / name
    card = ModelCard.load(folder)
    images, requested = generate(folder, QUALITY_SAMPLES, seed=123)
    report = evaluator_for(card).score(images, requested, seed=123)
    assert report.diversity_ok
    assert report.coverage_tvd == pytest.approx(card.metrics.coverage_tvd, abs=0.05)
    if card.conditional:
        assert report.class_accuracy == pytest.approx(card.metrics.class_accuracy, abs=0.05)


def conditional_card() -> dict:
    for name in FOLDERS:
        raw = json.loads((MODELS / name / CARD_FILE).read_text())
        if raw["class_names"] and raw["metrics"]:
            return raw
    raise AssertionError(f"no evaluated conditional model in {MODELS}")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["training"].update(lr_g=1e-4), "training.lr_g"),
        (lambda c: c["metrics"].update(fid=3.0), "metrics.fid"),
        (lambda c: c["metrics"].update(fd="low"), "metrics.fd"),
        (lambda c: c["metrics"]["per_class_accuracy"].pop(), "per_class_accuracy"),
        (lambda c: c["metrics"].update(per_class_accuracy=None), "per_class_accuracy"),
        (lambda c: c["metrics"].update(coverage_tvd=1.5), "metrics.coverage_tvd"),
    ],
    ids=[
        "training-extra",
        "metrics-extra",
        "metrics-type",
        "per-class-length",
        "accuracy-pair",
        "tvd-range",
    ],
)
def test_card_schema_is_strict(change, field: str) -> None:
    """Every key is declared: a misspelt or undeclared one fails instead of riding along."""
    raw = conditional_card()
    ModelCard.model_validate(raw)
    change(raw)
    with pytest.raises(ValidationError, match=field):
        ModelCard.model_validate(raw)
