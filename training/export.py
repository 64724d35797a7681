"""Export a training checkpoint's generator to `OUT_DIR/model.onnx` + `card.json`.

    python -m training.export runs/smoke/checkpoint.pt models/my-model [--name NAME] [--fp16]
        [--bn-batches 100]

The exported graph has inputs `z` [N, latent_dim] (and `y` [N, num_classes] when
conditional), output `image` [N, C, H, W] in [-1, 1], and a dynamic batch axis. Before
export the batch-norm running statistics are re-estimated with the exported (EMA) weights.
Every export is parity-checked against PyTorch at batch sizes 1, 7 and 64; a mismatch fails it.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from service.card import CARD_FILE, MODEL_FILE, ImageShape, ModelCard, Training, sha256_of
from training import batchnorm, checkpoint
from training.fp16 import to_fp16
from training.networks import NetworkSpec, count_parameters

PARITY_BATCHES = (1, 7, 64)
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2  # half precision keeps ~3 significant digits; tanh output is in [-1, 1]
OPSET = 18
BN_BATCHES = 100  # batches of random latents for the batch-norm statistics


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch generator."""


class _Wrapped(torch.nn.Module):
    """Fixes the graph's signature to (z) or (z, y), whatever the generator's class."""

    def __init__(self, generator: torch.nn.Module, conditional: bool) -> None:
        super().__init__()
        self.generator = generator
        self.conditional = conditional

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, y if self.conditional else None)


def example_inputs(spec: NetworkSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {"z": rng.standard_normal((batch, spec.latent_dim), dtype=np.float32)}
    if spec.conditional:
        labels = rng.integers(0, spec.num_classes, batch)
        inputs["y"] = np.eye(spec.num_classes, dtype=np.float32)[labels]
    return inputs


def to_onnx(generator: torch.nn.Module, spec: NetworkSpec, path: Path, fp16: bool) -> None:
    wrapped = _Wrapped(generator, spec.conditional).eval()
    names = ["z", "y"] if spec.conditional else ["z"]
    # Trace with batch 2: a batch of 1 can be specialised into a fixed dimension.
    args = tuple(torch.from_numpy(v) for v in example_inputs(spec, 2).values())
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        wrapped,
        args,
        dynamo=True,
        input_names=names,
        output_names=["image"],
        dynamic_shapes={name: {0: batch} for name in ["z", "y"][: len(args)]},
        opset_version=OPSET,
        external_data=False,
    )
    model = program.model_proto
    if fp16:
        model = to_fp16(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def parity(generator: torch.nn.Module, spec: NetworkSpec, path: Path, tolerance: float) -> float:
    """Max abs difference between ONNX Runtime and PyTorch over several batch sizes."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in PARITY_BATCHES:
        inputs = example_inputs(spec, batch, seed=batch)
        (onnx_out,) = session.run(["image"], inputs)
        with torch.no_grad():
            y = torch.from_numpy(inputs["y"]) if "y" in inputs else None
            torch_out = generator(torch.from_numpy(inputs["z"]), y).numpy()
        if onnx_out.shape != torch_out.shape:
            raise ExportError(f"batch {batch}: ONNX shape {onnx_out.shape} != {torch_out.shape}")
        diff = float(np.abs(onnx_out - torch_out).max())
        worst = max(worst, diff)
        if not diff <= tolerance:  # also catches NaN
            raise ExportError(
                f"parity check failed at batch {batch}: max |onnx - torch| = {diff:.2e} "
                f"> {tolerance:.0e}"
            )
    return worst


def reproducing_command(command: str) -> str:
    """The training command without `--resume PATH`: resuming is exact, so the plain command
    reproduces the same weights in one go (and needs no checkpoint to exist)."""
    words = shlex.split(command)
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--resume":
            skip = True
        elif not word.startswith("--resume="):
            kept.append(word)
    return shlex.join(kept)


def default_name(checkpoint_path: Path) -> str:
    raw = checkpoint_path.parent.name or "generator"
    return re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._") or "generator"


def export(
    checkpoint_path: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    fp16: bool = False,
    version: str = "1",
    bn_batches: int = BN_BATCHES,
) -> ModelCard:
    checkpoint_path, out_dir = Path(checkpoint_path), Path(out_dir)
    state = checkpoint.load(checkpoint_path)
    spec = NetworkSpec(**state["spec"])
    cfg = state["config"]
    generator = checkpoint.generator_from_checkpoint(state)
    # Seeded by the run's seed: re-exporting a checkpoint gives the same file.
    bn_batches = batchnorm.reestimate(generator, spec, bn_batches, cfg["batch_size"], cfg["seed"])
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / MODEL_FILE
        to_onnx(generator, spec, staged, fp16)
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
        worst = parity(generator, spec, staged, tolerance)
        staged.replace(model_path)  # only a model that passed parity reaches OUT_DIR
    card = ModelCard(
        name=name or default_name(checkpoint_path),
        version=version,
        architecture=spec.arch,
        dataset=state.get("dataset", cfg["dataset"]),
        image=ImageShape(channels=spec.channels, height=spec.image_size, width=spec.image_size),
        latent_dim=spec.latent_dim,
        class_names=state.get("class_names", []) if spec.conditional else [],
        input_names=["z", "y"] if spec.conditional else ["z"],
        precision="fp16" if fp16 else "fp32",
        sha256=sha256_of(model_path),
        parameters=count_parameters(generator),
        training=Training(
            command=reproducing_command(state.get("command", "")),
            epochs=state["epoch"],
            steps=state["step"],
            loss=cfg["loss"],
            batch_size=cfg["batch_size"],
            wall_time_s=round(state.get("wall_time_s", 0.0), 1),
            device=state.get("device", ""),
            ema_decay=cfg["ema_decay"],
            seed=cfg["seed"],
            spectral_norm=spec.spectral_norm,
            width=spec.width,
            lr=cfg["lr"],
            bn_batches=bn_batches,
            export_parity_max_abs_diff=worst,
        ),
    )
    if (out_dir / CARD_FILE).exists():  # keep measured quality when re-exporting the same file
        try:
            old = ModelCard.load(out_dir)
            if old.sha256 == card.sha256:
                card.metrics = old.metrics
        except Exception:  # a broken old card is simply replaced
            pass
    card.save(out_dir)
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.export", description=__doc__.split("\n")[0]
    )
    p.add_argument("checkpoint", help="a checkpoint.pt written by `python -m training`")
    p.add_argument("out_dir", help="model folder to write, e.g. models/my-model")
    p.add_argument("--name", help="model name (default: the checkpoint's run folder)")
    p.add_argument("--version", default="1")
    p.add_argument("--fp16", action="store_true", help="half-precision weights, float32 I/O")
    p.add_argument(
        "--bn-batches",
        type=int,
        default=BN_BATCHES,
        metavar="N",
        help="re-estimate batch-norm statistics with the exported weights over N batches of "
        "random latents (the run's batch size); 0 keeps them as trained (default: %(default)s)",
    )
    args = p.parse_args(argv)
    if args.bn_batches < 0:
        p.error("--bn-batches must be 0 or more")
    try:
        card = export(
            args.checkpoint, args.out_dir, args.name, args.fp16, args.version, args.bn_batches
        )
    except (checkpoint.CheckpointError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size_mb = (Path(args.out_dir) / MODEL_FILE).stat().st_size / 1e6
    print(
        f"exported {card.name} ({card.architecture}, {card.parameters:,} params, "
        f"{size_mb:.1f} MB, {card.precision}) to {args.out_dir}; batch-norm statistics from "
        f"{card.training.bn_batches} batches; parity max abs diff "
        f"{card.training.export_parity_max_abs_diff:.1e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
