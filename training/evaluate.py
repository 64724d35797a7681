"""Measure a generator's quality in the feature space of the project's Fashion-MNIST classifier.

    python -m training.evaluate models/fashion-cgan [--samples 10000] [--no-write]

Prints a table and writes the figures into the model's card.json:
- Fréchet distance (FD) between generated and test-set features, the floor (10,000 real
  train images vs. the test set) and their ratio;
- for conditional models, class accuracy (overall and per class): how often the classifier
  labels an image generated for class k as k;
- diversity: mean pairwise feature distance within each class, generated over real; a
  collapsed generator scores far below 1.

Everything runs through ONNX Runtime, so it evaluates exactly the file the service serves.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.card import CARD_FILE, MODEL_FILE, Metrics, ModelCard
from training import data
from training.grids import save_grid

CLASSIFIER_DIR = Path(__file__).resolve().parent.parent / "evaluation" / "fashion-classifier"
DIVERSITY_PAIRS = 2000  # random pairs per class; plenty for a stable mean distance
DIVERSITY_MIN_MEAN = 0.75
DIVERSITY_MIN_CLASS = 0.5


@dataclass
class Report:
    fd: float
    floor: float
    diversity: float
    diversity_per_class: list[float]
    samples: int
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
            evaluator="fashion-classifier features (evaluation/fashion-classifier)",
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
        )


class FeatureExtractor:
    """The shipped classifier: images in [-1, 1] -> (logits, penultimate features)."""

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


class Evaluator:
    """Reference statistics of the real data, computed once and reused for every model."""

    def __init__(self, data_root: str | None = None, classifier: Path = CLASSIFIER_DIR) -> None:
        self.extract = FeatureExtractor(classifier)
        test = data.load("fashion-mnist", "test", data_root)
        train = data.load("fashion-mnist", "train", data_root)
        self.class_names = test.class_names
        self.test_labels = test.labels
        _, self.test_features = self.extract(to_unit_range(test.images))
        # The floor: 10,000 real train images (a fixed, class-balanced draw) vs. the test set.
        pick = np.random.default_rng(0).permutation(len(train))[:10_000]
        _, train_features = self.extract(to_unit_range(train.images[pick]))
        self.floor = frechet_distance(train_features, self.test_features)

    def score(
        self, images: np.ndarray, requested: np.ndarray | None = None, seed: int = 0
    ) -> Report:
        """Score images in [-1, 1]; `requested` holds each image's class if conditional."""
        logits, features = self.extract(images)
        predicted = logits.argmax(1)
        rng = np.random.default_rng(seed)
        # Diversity by class: the requested class when conditional, else the predicted one.
        groups = requested if requested is not None else predicted
        per_class = []
        for k in range(len(self.class_names)):
            mine = features[groups == k]
            if len(mine) < 2:
                continue  # a class the generator never produces is caught by FD, not here
            real = self.test_features[self.test_labels == k]
            per_class.append(mean_pairwise_distance(mine, rng) / mean_pairwise_distance(real, rng))
        if not per_class:
            per_class = [0.0]
        report = Report(
            fd=frechet_distance(features, self.test_features),
            floor=self.floor,
            diversity=float(np.mean(per_class)),
            diversity_per_class=per_class,
            samples=len(images),
        )
        if requested is not None:
            hits = predicted == requested
            report.class_accuracy = float(hits.mean())
            report.per_class_accuracy = [
                float(hits[requested == k].mean()) for k in range(len(self.class_names))
            ]
        return report


def generate(folder: Path, samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """`samples` images from a model folder; conditional models get equal counts per class."""
    card = ModelCard.load(folder)
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(seed).standard_normal((samples, card.latent_dim), dtype=np.float32)
    requested = None
    if card.conditional:
        requested = np.arange(samples) % card.num_classes
    images = []
    for start in range(0, samples, 500):
        feed = {"z": z[start : start + 500]}
        if requested is not None:
            feed["y"] = np.eye(card.num_classes, dtype=np.float32)[requested[start : start + 500]]
        images.append(session.run(["image"], feed)[0])
    return np.concatenate(images), requested


def print_table(name: str, report: Report, class_names: list[str]) -> None:
    print(f"\n{name}: {report.samples} samples")
    print(f"{'metric':<28}{'value':>10}")
    print(f"{'FD (generated vs test)':<28}{report.fd:>10.3f}")
    print(f"{'FD floor (train vs test)':<28}{report.floor:>10.3f}")
    print(f"{'FD / floor':<28}{report.ratio:>10.2f}")
    verdict = "ok" if report.diversity_ok else "COLLAPSED?"
    print(f"{'diversity (gen / real)':<28}{report.diversity:>10.3f}  {verdict}")
    if report.class_accuracy is not None:
        print(f"{'class accuracy':<28}{report.class_accuracy:>10.4f}")
        print(f"\n{'class':<14}{'accuracy':>10}{'diversity':>11}")
        for k, cls in enumerate(class_names):
            div = (
                report.diversity_per_class[k]
                if k < len(report.diversity_per_class)
                else float("nan")
            )
            print(f"{cls:<14}{report.per_class_accuracy[k]:>10.4f}{div:>11.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("models", nargs="+", help="model folders (model.onnx + card.json)")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", help="Fashion-MNIST IDX folder")
    p.add_argument("--no-write", action="store_true", help="print only; leave card.json as is")
    p.add_argument("--grid", help="also save a 10x10 sample grid PNG here ({name} = model name)")
    args = p.parse_args(argv)
    try:
        evaluator = Evaluator(args.data_root)
    except (data.DatasetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for folder in map(Path, args.models):
        card = ModelCard.load(folder)
        if card.dataset != "fashion-mnist" or card.image.height != 28:
            print(
                f"error: {folder}: the evaluator measures 28x28 Fashion-MNIST models only",
                file=sys.stderr,
            )
            return 2
        images, requested = generate(folder, args.samples, args.seed)
        report = evaluator.score(images, requested, args.seed)
        print_table(card.name, report, evaluator.class_names)
        if args.grid:  # the first 100 samples; conditional models show one class per column
            path = Path(args.grid.format(name=card.name))
            path.parent.mkdir(parents=True, exist_ok=True)
            save_grid(images[:100], str(path), columns=10)
            print(f"wrote sample grid {path}")
        if not args.no_write:
            card.metrics = report.metrics()
            card.save(folder)
            print(f"wrote metrics to {folder / CARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
