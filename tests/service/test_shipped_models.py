"""The generators shipped in models/: integrity, contract, and a quality regression check."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from harness import MODELS_DIR
from service.card import CARD_FILE, MODEL_FILE, ModelCard, sha256_of
from training.evaluate import Evaluator, generate

MODELS = MODELS_DIR
SHIPPED = ["fashion-cgan", "fashion-dcgan"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_card(name: str) -> None:
    folder = MODELS / name
    card = ModelCard.load(folder)
    assert card.name == name
    assert sha256_of(folder / MODEL_FILE) == card.sha256
    assert (folder / MODEL_FILE).stat().st_size <= 20e6
    assert card.training.epochs > 0 and card.training.command.startswith("python -m training")
    assert card.metrics is not None and card.metrics.fd_ratio > 1 and card.metrics.diversity_ok
    assert (card.metrics.class_accuracy is not None) == card.conditional
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == card.input_names
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        feed = {"z": rng.standard_normal((batch, card.latent_dim), dtype=np.float32)}
        if card.conditional:
            feed["y"] = np.eye(card.num_classes, dtype=np.float32)[rng.integers(0, 10, batch)]
        (image,) = session.run(card.output_names, feed)
        assert image.shape == (batch, card.image.channels, card.image.height, card.image.width)
        low, high = card.output_range
        # ONNX Runtime's vectorised tanh may overshoot ±1 by an ulp; the service clips anyway
        assert image.min() >= low - 1e-6 and image.max() <= high + 1e-6
        assert image.std() > 0.1  # not a constant image


def test_cgan_class_accuracy_stays_within_five_points_of_its_card() -> None:
    folder = MODELS / "fashion-cgan"
    card = ModelCard.load(folder)
    images, requested = generate(folder, 2000, seed=123)
    report = Evaluator().score(images, requested, seed=123)
    assert report.class_accuracy == pytest.approx(card.metrics.class_accuracy, abs=0.05)
    assert report.diversity_ok


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
    raw = json.loads((MODELS / "fashion-cgan" / CARD_FILE).read_text())
    ModelCard.model_validate(raw)
    change(raw)
    with pytest.raises(ValidationError, match=field):
        ModelCard.model_validate(raw)
