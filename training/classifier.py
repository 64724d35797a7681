"""The classifier whose feature space the evaluator measures a data set's generators in.

Inception weights cannot be fetched here, so FID-style distances use a small CNN trained on
the data set's train split (image folders: every 5th image per class held out as the test
split) and exported to ONNX with two outputs: `logits` [N, classes] and `features`
[N, 128] (the penultimate layer), beside a `ClassifierCard` (`classifier.json`).

    python -m training.classifier     # Fashion-MNIST, into evaluation/fashion-classifier
    python -m training.classifier --dataset folder:data/shapes --image-size 32
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from service.card import ImageShape, sha256_of
from training import data
from training.classifier_card import MODEL_FILE, ClassifierCard, default_dir
from training.evaluate import reference_splits

FEATURES = 128
IMAGE_SIZES = (28, 32, 64)
FLIPPED = ("fashion-mnist", "cifar10")  # mirror images stay valid images of their class


class Classifier(nn.Module):
    """Conv blocks (two convs, batch norm, ReLU, 2x max-pool) down to 7 or 8 px, then a
    FEATURES-wide layer whose output is the feature space, then the class head."""

    def __init__(self, num_classes: int = 10, channels: int = 1, image_size: int = 28) -> None:
        super().__init__()
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"image size {image_size} unsupported; use {IMAGE_SIZES}")

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
                nn.MaxPool2d(2),
            ]

        widths = [32, 64] + ([64] if image_size == 64 else [])
        layers, c_in, side = [], channels, image_size
        for width in widths:
            layers += block(c_in, width)
            c_in, side = width, side // 2
        self.body = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(c_in * side * side, FEATURES),
            nn.ReLU(True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(self.dropout(features)), features


def _as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float in [-1, 1], the generators' output range."""
    return torch.from_numpy(images).float().div_(127.5).sub_(1.0)


def accuracy(model: nn.Module, split: data.ImageDataset) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(split), 1000):
            logits, _ = model(_as_input(split.images[start : start + 1000]))
            labels = torch.from_numpy(split.labels[start : start + 1000])
            correct += (logits.argmax(1) == labels).sum().item()
    return correct / len(split)


def train(
    train_set: data.ImageDataset,
    test_set: data.ImageDataset,
    epochs: int,
    seed: int,
    batch: int = 128,
    flip: bool = True,
) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    model = Classifier(len(train_set.class_names), train_set.channels, train_set.image_size)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    batch = min(batch, len(train_set))
    steps = max(epochs * (len(train_set) // batch), 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    images = _as_input(train_set.images)
    labels = torch.from_numpy(train_set.labels)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images))
        bar = tqdm(range(len(images) // batch), desc=f"classifier epoch {epoch + 1}/{epochs}")
        for i in bar:
            idx = order[i * batch : (i + 1) * batch]
            x = images[idx]
            if flip:  # light augmentation: random horizontal flips
                mirrored = torch.rand(len(x)) < 0.5
                x[mirrored] = x[mirrored].flip(-1)
            loss = F.cross_entropy(model(x)[0], labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        print(f"epoch {epoch + 1}: test accuracy {accuracy(model, test_set):.4f}", flush=True)
    return model.eval(), accuracy(model, test_set)


def export(model: nn.Module, out_dir: Path, card: dict) -> ClassifierCard:
    """Write `model.onnx` and its card (`card` holds every field but the file's sha256)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    shape = card["image"]
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model,
        (torch.zeros(2, shape.channels, shape.height, shape.width),),
        dynamo=True,
        input_names=["image"],
        output_names=["logits", "features"],
        dynamic_shapes={"x": {0: batch}},
        external_data=False,
    )
    program.save(str(path))
    written = ClassifierCard(**card, sha256=sha256_of(path))
    written.save(out_dir)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(
        prog="python -m training.classifier", description=__doc__.split("\n")[0]
    )
    p.add_argument("--dataset", default="fashion-mnist", help=f"one of {', '.join(data.DATASETS)}")
    p.add_argument("--image-size", type=int, choices=IMAGE_SIZES, help="folders: resize to it")
    p.add_argument("--data-root", help="where the data set lives (Fashion-MNIST: its IDX folder)")
    p.add_argument("--download", action="store_true", help="fetch MNIST, SVHN or CIFAR-10")
    p.add_argument("--out", help="classifier folder (default: evaluation/<data set>-classifier)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        help=f"random horizontal flips (default: on for {', '.join(FLIPPED)})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--min-accuracy", type=float, default=0.0, help="exit 1 below this test accuracy"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        train_set, test_set = reference_splits(
            args.dataset, args.data_root, args.image_size, args.download
        )
    except data.DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flip = args.flip if args.flip is not None else args.dataset in FLIPPED
    model, acc = train(train_set, test_set, args.epochs, args.seed, args.batch_size, flip)
    out = Path(args.out) if args.out else default_dir(args.dataset, train_set.image_size)
    card = export(
        model,
        out,
        {
            "dataset": train_set.name,
            "image": ImageShape(
                channels=train_set.channels,
                height=train_set.image_size,
                width=train_set.images.shape[3],
            ),
            "class_names": train_set.class_names,
            "feature_dim": FEATURES,
            "train_images": len(train_set),
            "test_images": len(test_set),
            "test_accuracy": round(acc, 4),
            "command": shlex.join(["python", "-m", "training.classifier", *argv]),
            "epochs": args.epochs,
            "seed": args.seed,
            "wall_time_s": round(time.perf_counter() - started, 1),
        },
    )
    print(f"test accuracy {card.test_accuracy:.4f}; wrote {out / MODEL_FILE}")
    return 0 if acc >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
