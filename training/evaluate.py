"""Measure a generator's quality in the feature space of a classifier of its data set.

    python -m training.evaluate models/fashion-cgan [--samples 10000] [--no-write]

Each model is measured with the classifier in `evaluation/` whose card names the model's data
set and image shape (`training.classifier_card`); when none exists, the error gives the
command that trains it. Prints a table and writes the figures into the model's card.json:
- Fréchet distance (FD) between generated and test-set features, the floor (up to 10,000 real
  train images vs. the test set) and their ratio;
- for conditional models, class accuracy (overall and per class): how often the classifier
  labels an image generated for class k as k;
- diversity: mean pairwise feature distance within each class, generated over real; a
  collapsed generator scores far below 1;
- class coverage: total variation distance between the predicted-class histogram of the
  generated images and the uniform one (0: every class equally often).

Everything runs through ONNX Runtime, so it evaluates exactly the file the service serves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.card import CARD_FILE, MODEL_FILE, ModelCard
from training import data
from training.classifier_card import (
    EVALUATION_DIR,
    ClassifierCard,
    NoClassifierError,
    find_classifier,
)
from training.eval_metrics import (
    CLASSIFIER_DIR,
    FeatureExtractor,
    Report,
    coverage_tvd,
    frechet_distance,
    mean_pairwise_distance,
    to_unit_range,
    uniform_coverage_tvd,
)
from training.grids import save_grid

__all__ = [
    "CLASSIFIER_DIR",
    "Evaluator",
    "Report",
    "coverage_tvd",
    "frechet_distance",
    "uniform_coverage_tvd",
]
__all__ += ["generate", "reference_splits", "to_unit_range"]

FLOOR_IMAGES = 10_000  # real train images in the floor's reference set
FOLDER_TEST_EVERY = 5  # image folders have no test split: every 5th image of a class is held out


def reference_splits(
    dataset: str,
    data_root: str | None = None,
    image_size: int | None = None,
    download: bool = False,
) -> tuple[data.ImageDataset, data.ImageDataset]:
    """(train, test) of a labelled data set; an image folder is split per class, every
    FOLDER_TEST_EVERY-th image (in file order) going to the test part."""
    train = data.load(dataset, "train", data_root, download, image_size)
    if len(train.class_names) < 2:
        raise data.DatasetError(
            f"{dataset} has no class labels; a classifier needs one sub-folder per class"
        )
    if image_size and image_size != train.image_size:
        raise data.DatasetError(f"{dataset} has {train.image_size}px images, not {image_size}px")
    if not dataset.startswith("folder:"):
        return train, data.load(dataset, "test", data_root, download, image_size)
    rank = np.zeros(len(train), dtype=np.int64)  # position of each image within its class
    for k in range(len(train.class_names)):
        members = np.flatnonzero(train.labels == k)
        rank[members] = np.arange(len(members))
    held_out = rank % FOLDER_TEST_EVERY == 0

    def part(mask: np.ndarray) -> data.ImageDataset:
        return data.ImageDataset(
            train.name, train.images[mask], train.labels[mask], train.class_names
        )

    return part(~held_out), part(held_out)


def _shown(folder: Path) -> str:
    folder = Path(folder).resolve()
    root = EVALUATION_DIR.parent
    return str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)


class Evaluator:
    """Reference statistics of a classifier's real data, computed once, reused for every model."""

    def __init__(self, data_root: str | None = None, classifier: Path = CLASSIFIER_DIR) -> None:
        self.folder = Path(classifier)
        self.card = ClassifierCard.load(self.folder)
        self.extract = FeatureExtractor(self.folder)
        train, test = reference_splits(self.card.dataset, data_root, self.card.image.height)
        if train.images.shape[1:] != (
            self.card.image.channels,
            self.card.image.height,
            self.card.image.width,
        ):
            raise data.DatasetError(
                f"{self.card.dataset} reads as {train.images.shape[1:]} images but "
                f"{self.folder} was trained on {self.card.image}"
            )
        self.class_names = self.card.class_names
        self.test_labels = test.labels
        test_logits, self.test_features = self.extract(to_unit_range(test.images))
        self.real_coverage_tvd = coverage_tvd(test_logits.argmax(1), len(self.class_names))
        # The floor: up to 10,000 real train images (a fixed random draw) vs. the test set.
        pick = np.random.default_rng(0).permutation(len(train))[:FLOOR_IMAGES]
        _, train_features = self.extract(to_unit_range(train.images[pick]))
        self.floor = frechet_distance(train_features, self.test_features)

    @property
    def name(self) -> str:
        return f"{self.folder.name} features ({_shown(self.folder)})"

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
            real = self.test_features[self.test_labels == k]
            if len(mine) < 2 or len(real) < 2:
                continue  # a class the generator never produces is caught by FD and coverage
            per_class.append(mean_pairwise_distance(mine, rng) / mean_pairwise_distance(real, rng))
        if not per_class:
            per_class = [0.0]
        report = Report(
            fd=frechet_distance(features, self.test_features),
            floor=self.floor,
            diversity=float(np.mean(per_class)),
            diversity_per_class=per_class,
            samples=len(images),
            coverage_tvd=coverage_tvd(predicted, len(self.class_names)),
            evaluator=self.name,
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


def print_table(name: str, report: Report, evaluator: Evaluator) -> None:
    print(f"\n{name}: {report.samples} samples, {report.evaluator}")
    print(f"{'metric':<28}{'value':>10}")
    print(f"{'FD (generated vs test)':<28}{report.fd:>10.3f}")
    print(f"{'FD floor (train vs test)':<28}{report.floor:>10.3f}")
    print(f"{'FD / floor':<28}{report.ratio:>10.2f}")
    verdict = "ok" if report.diversity_ok else "COLLAPSED?"
    print(f"{'diversity (gen / real)':<28}{report.diversity:>10.3f}  {verdict}")
    noise, spread = uniform_coverage_tvd(report.samples, len(evaluator.class_names))
    real = (
        f"  (real test images: {evaluator.real_coverage_tvd:.4f}; sampling noise alone: "
        f"{noise:.4f} ± {spread:.4f})"
    )
    print(f"{'coverage TVD vs uniform':<28}{report.coverage_tvd:>10.4f}{real}")
    if report.class_accuracy is not None:
        print(f"{'class accuracy':<28}{report.class_accuracy:>10.4f}")
        print(f"\n{'class':<14}{'accuracy':>10}{'diversity':>11}")
        for k, cls in enumerate(evaluator.class_names):
            div = (
                report.diversity_per_class[k]
                if k < len(report.diversity_per_class)
                else float("nan")
            )
            print(f"{cls:<14}{report.per_class_accuracy[k]:>10.4f}{div:>11.3f}")


def check_classes(card: ModelCard, classifier: ClassifierCard) -> None:
    """A conditional model's class k must be the classifier's class k, or accuracy is noise."""
    if card.conditional and card.class_names != classifier.class_names:
        raise NoClassifierError(
            f"model {card.name!r} has classes {card.class_names} but the classifier of "
            f"{classifier.dataset} has {classifier.class_names}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("models", nargs="+", help="model folders (model.onnx + card.json)")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", help="where the data set lives (Fashion-MNIST: its IDX folder)")
    p.add_argument(
        "--classifiers",
        default=str(EVALUATION_DIR),
        help="folder of classifier folders to pick from (default: %(default)s)",
    )
    p.add_argument("--no-write", action="store_true", help="print only; leave card.json as is")
    p.add_argument(
        "--grid",
        help="also save a sample grid PNG here ({name} = model name): 10 rows; "
        "conditional models one class per column",
    )
    args = p.parse_args(argv)
    evaluators: dict[Path, Evaluator] = {}  # one per classifier, shared by its models
    for folder in map(Path, args.models):
        card = ModelCard.load(folder)
        try:
            classifier = find_classifier(card, Path(args.classifiers), args.data_root)
            if classifier not in evaluators:
                evaluators[classifier] = Evaluator(args.data_root, classifier)
            evaluator = evaluators[classifier]
            check_classes(card, evaluator.card)
        except (data.DatasetError, FileNotFoundError, NoClassifierError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        images, requested = generate(folder, args.samples, args.seed)
        report = evaluator.score(images, requested, args.seed)
        print_table(card.name, report, evaluator)
        if args.grid:  # the first samples; conditional models show one class per column
            columns = card.num_classes if card.conditional else 10
            path = Path(args.grid.format(name=card.name))
            path.parent.mkdir(parents=True, exist_ok=True)
            save_grid(images[: columns * 10], str(path), columns=columns)
            print(f"wrote sample grid {path}")
        if not args.no_write:
            card.metrics = report.metrics()
            card.save(folder)
            print(f"wrote metrics to {folder / CARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
