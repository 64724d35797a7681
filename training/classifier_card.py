"""The evaluation classifiers: their card (`classifier.json`) and which one measures a model.

Each classifier lives in `evaluation/<slug>-classifier/` as `model.onnx` (input `image`
[N, C, H, W] in [-1, 1]; outputs `logits` [N, classes] and `features` [N, feature_dim])
beside a `ClassifierCard`. A generator is measured with the classifier whose card names the
same data set and image shape; the folder name is only where `training.classifier` writes.
No torch here: the evaluator runs on ONNX Runtime alone.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from service.card import Fraction, ImageShape, ModelCard

EVALUATION_DIR = Path(__file__).resolve().parent.parent / "evaluation"
CLASSIFIER_FILE = "classifier.json"
MODEL_FILE = "model.onnx"
# Short folder names for the named data sets; Fashion-MNIST's is the shipped classifier's.
SLUGS = {"fashion-mnist": "fashion", "mnist": "mnist", "svhn": "svhn", "cifar10": "cifar10"}


class ClassifierCard(BaseModel):
    """What a classifier was trained on and how well it classifies the held-out images."""

    model_config = ConfigDict(extra="forbid")

    purpose: str = "feature space for evaluating generators; not a served model"
    dataset: str
    image: ImageShape
    class_names: list[str] = Field(min_length=2)
    feature_dim: int = Field(ge=1)
    input_name: str = "image"
    output_names: list[str] = ["logits", "features"]
    train_images: int = Field(ge=1)
    test_images: int = Field(ge=1)
    test_accuracy: Fraction
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    command: str
    epochs: int = Field(ge=0)
    seed: int = 0
    wall_time_s: float = Field(ge=0)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CLASSIFIER_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ClassifierCard:
        return cls.model_validate(json.loads((Path(folder) / CLASSIFIER_FILE).read_text()))


def same_dataset(a: str, b: str) -> bool:
    """Data set names are equal; `folder:` paths compare resolved (relative to the cwd)."""
    if a.startswith("folder:") and b.startswith("folder:"):
        return (
            Path(a.removeprefix("folder:")).resolve() == Path(b.removeprefix("folder:")).resolve()
        )
    return a == b


def dataset_slug(dataset: str, image_size: int) -> str:
    """`fashion-mnist` -> `fashion`; `folder:data/shapes` at 32 px -> `shapes-32` (a folder can
    be read at any size, so the size is part of its name)."""
    if dataset in SLUGS:
        return SLUGS[dataset]
    base = Path(dataset.removeprefix("folder:")).resolve().name
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "folder"
    return f"{slug}-{image_size}"


def default_dir(dataset: str, image_size: int, root: Path = EVALUATION_DIR) -> Path:
    return root / f"{dataset_slug(dataset, image_size)}-classifier"


def train_command(
    dataset: str, image_size: int, data_root: str | None = None, root: Path = EVALUATION_DIR
) -> str:
    """The command line that trains the classifier a model of this data set and size needs."""
    words = ["python", "-m", "training.classifier", "--dataset", dataset]
    if dataset.startswith("folder:"):
        words += ["--image-size", str(image_size)]
    if data_root:
        words += ["--data-root", data_root]
    if Path(root).resolve() != EVALUATION_DIR:
        words += ["--out", str(default_dir(dataset, image_size, Path(root)))]
    return shlex.join(words)


class NoClassifierError(LookupError):
    """No classifier matches a model card; the message holds the command that trains one."""


def classifiers(root: Path = EVALUATION_DIR) -> list[tuple[Path, ClassifierCard]]:
    """Every valid classifier folder under `root` (a folder with a broken card is skipped)."""
    found = []
    for card_path in sorted(Path(root).glob(f"*/{CLASSIFIER_FILE}")):
        try:
            found.append((card_path.parent, ClassifierCard.load(card_path.parent)))
        except (ValueError, OSError):
            continue
    return found


def find_classifier(
    card: ModelCard, root: Path = EVALUATION_DIR, data_root: str | None = None
) -> Path:
    """The folder of the classifier for `card`'s data set and image shape."""
    for folder, classifier in classifiers(root):
        if (
            same_dataset(classifier.dataset, card.dataset)
            and classifier.image == card.image
            and (folder / MODEL_FILE).exists()
        ):
            return folder
    shape = f"{card.image.channels}x{card.image.height}x{card.image.width}"
    raise NoClassifierError(
        f"no classifier in {root} for data set {card.dataset!r} at {shape} (model "
        f"{card.name!r}); train one with:\n  "
        f"{train_command(card.dataset, card.image.height, data_root, root)}"
    )
