"""The Fashion-MNIST classifier whose feature space the evaluator measures quality in.

Inception weights cannot be fetched here, so FID-style distances use this small CNN,
trained on the train split and exported to ONNX with two outputs: `logits` [N, 10] and
`features` [N, 128] (the penultimate layer). Retrain it with:

    python -m training.classifier --out evaluation/fashion-classifier
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from service.card import sha256_of
from training import data
from training.evaluate import CLASSIFIER_DIR as DEFAULT_DIR

FEATURES = 128


class Classifier(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

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

        self.body = nn.Sequential(
            *block(1, 32),
            *block(32, 64),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURES),
            nn.ReLU(True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURES, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(self.dropout(features)), features


def _as_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 1, 28, 28] -> float in [-1, 1], the generators' output range."""
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


def train(epochs: int, seed: int, data_root: str | None) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    train_set = data.load("fashion-mnist", "train", data_root)
    test_set = data.load("fashion-mnist", "test", data_root)
    model = Classifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    batch = 128
    steps = epochs * (len(train_set) // batch)
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
            # Light augmentation: random horizontal flips keep garments valid garments.
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = F.cross_entropy(model(x)[0], labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        print(f"epoch {epoch + 1}: test accuracy {accuracy(model, test_set):.4f}", flush=True)
    return model.eval(), accuracy(model, test_set)


def export(model: nn.Module, out_dir: Path, test_accuracy: float, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        model,
        (torch.zeros(2, 1, 28, 28),),
        dynamo=True,
        input_names=["image"],
        output_names=["logits", "features"],
        dynamic_shapes={"x": {0: batch}},
        external_data=False,
    )
    program.save(str(path))
    info = {
        "purpose": "feature space for evaluating generators; not a served model",
        "dataset": "fashion-mnist",
        "input": "image float32 [N, 1, 28, 28] in [-1, 1]",
        "outputs": {"logits": "[N, 10]", "features": f"[N, {FEATURES}] penultimate layer"},
        "class_names": data.FASHION_MNIST_CLASSES,
        "test_accuracy": round(test_accuracy, 4),
        "sha256": sha256_of(path),
        **meta,
    }
    (out_dir / "classifier.json").write_text(json.dumps(info, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.classifier", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", default=str(DEFAULT_DIR))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, acc = train(args.epochs, args.seed, args.data_root)
    command = "python -m training.classifier " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    meta = {
        "command": command.strip(),
        "epochs": args.epochs,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    export(model, Path(args.out), acc, meta)
    print(f"test accuracy {acc:.4f}; wrote {args.out}/model.onnx")
    return 0 if acc >= 0.90 else 1


if __name__ == "__main__":
    sys.exit(main())
