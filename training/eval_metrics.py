"""Sample-quality measures: classifier features, Frechet distance, diversity, class coverage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.card import Metrics
from training.classifier_card import EVALUATION_DIR

CLASSIFIER_DIR = EVALUATION_DIR / "fashion-classifier"  # the shipped Fashion-MNIST classifier
DIVERSITY_PAIRS = 2000  # random pairs per class; plenty for a stable mean distance
DIVERSITY_MIN_MEAN = 0.75
DIVERSITY_MIN_CLASS = 0.5


def coverage_tvd(predicted: np.ndarray, num_classes: int) -> float:
    """0.5 * sum_k |p_k - 1/K| for the histogram p of predicted classes: 0 when every class
    is predicted equally often, 1 - 1/K when all images land in one class."""
    p = np.bincount(predicted, minlength=num_classes)[:num_classes] / max(len(predicted), 1)
    return float(0.5 * np.abs(p - 1.0 / num_classes).sum())


def uniform_coverage_tvd(samples: int, num_classes: int, draws: int = 2000) -> tuple[float, float]:
    """Mean and standard deviation of `coverage_tvd` for a sampler that draws every class with
    exactly 1/K probability: the sampling noise a model's figure at this sample count sits on
    (about 0.012 ± 0.003 for 10,000 samples of 10 classes), not a fault of the model."""
    rng = np.random.default_rng(0)
    counts = rng.multinomial(samples, [1.0 / num_classes] * num_classes, size=draws)
    tvd = 0.5 * np.abs(counts / samples - 1.0 / num_classes).sum(axis=1)
    return float(tvd.mean()), float(tvd.std())


@dataclass
class Report:
    fd: float
    floor: float
    diversity: float
    diversity_per_class: list[float]
    samples: int
    coverage_tvd: float
    evaluator: str = "fashion-classifier features (evaluation/fashion-classifier)"
    class_accuracy: float | None = None
    per_class_accuracy: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.fd / self.floor

    @property
    def diversity_ok(self) -> bool:
        return (
            self.diversity >= DIVERSITY_MIN_MEAN
            and min(self.diversity_per_class) >= DIVERSITY_MIN_CLASS
        )

    def metrics(self) -> Metrics:
        conditional = self.class_accuracy is not None
        return Metrics(
            evaluator=self.evaluator,
            samples=self.samples,
            fd=round(self.fd, 4),
            fd_floor=round(self.floor, 4),
            fd_ratio=round(self.ratio, 3),
            diversity=round(self.diversity, 3),
            diversity_ok=self.diversity_ok,
            diversity_per_class=[round(d, 3) for d in self.diversity_per_class],
            class_accuracy=round(self.class_accuracy, 4) if conditional else None,
            per_class_accuracy=(
                [round(a, 4) for a in self.per_class_accuracy] if conditional else None
            ),
            coverage_tvd=round(self.coverage_tvd, 4),
        )


class FeatureExtractor:
    """A classifier's ONNX file: images in [-1, 1] -> (logits, penultimate features)."""

    def __init__(self, folder: Path = CLASSIFIER_DIR) -> None:
        path = Path(folder) / "model.onnx"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing; train it with `python -m training.classifier`"
            )
        options = ort.SessionOptions()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
        logits, features = [], []
        for start in range(0, len(images), batch):
            chunk = np.ascontiguousarray(images[start : start + batch], dtype=np.float32)
            out_logits, out_features = self.session.run(["logits", "features"], {"image": chunk})
            logits.append(out_logits)
            features.append(out_features)
        return np.concatenate(logits), np.concatenate(features).astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between two feature sets.

    Tr((S_a S_b)^1/2) is the sum of square roots of the eigenvalues of S_a S_b, which are
    real and non-negative for covariance matrices (up to rounding, hence the clip).
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b).real.clip(min=0)
    trace_sqrt = np.sqrt(eigenvalues).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def mean_pairwise_distance(features: np.ndarray, rng: np.random.Generator) -> float:
    i = rng.integers(0, len(features), DIVERSITY_PAIRS)
    j = rng.integers(0, len(features), DIVERSITY_PAIRS)
    keep = i != j
    return float(np.linalg.norm(features[i[keep]] - features[j[keep]], axis=1).mean())


def to_unit_range(images_uint8: np.ndarray) -> np.ndarray:
    return images_uint8.astype(np.float32) / 127.5 - 1.0
