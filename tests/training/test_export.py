"""Export: ONNX graph contract, parity with PyTorch, card validation, clear failures."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from harness import REPO_ROOT
from service.card import MODEL_FILE, Metrics, ModelCard, sha256_of
from training import batchnorm, checkpoint
from training.checkpoint import generator_from_checkpoint
from training.cli import main as train_main
from training.export import (
    BN_BATCHES,
    ExportError,
    example_inputs,
    export,
    parity,
    reproducing_command,
)
from training.networks import NetworkSpec

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def cgan_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cgan")
    args = ["--arch", "cgan", "--epochs", "1", "--limit", "256", "--batch-size", "64",
            "--width", "8", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert train_main(args) == 0
    return out / "checkpoint.pt"


def test_export_writes_a_valid_card_and_a_dynamic_batch_graph(cgan_checkpoint, tmp_path) -> None:
    card = export(cgan_checkpoint, tmp_path / "m", name="tiny-cgan")
    loaded = ModelCard.load(tmp_path / "m")
    assert loaded == card
    assert loaded.sha256 == sha256_of(tmp_path / "m" / MODEL_FILE)
    assert loaded.input_names == ["z", "y"] and loaded.output_names == ["image"]
    assert loaded.class_names[9] == "Ankle boot"
    assert loaded.training.epochs == 1 and "python -m training" in loaded.training.command
    assert loaded.training.width == 8 and loaded.training.bn_batches == BN_BATCHES
    assert loaded.metrics is None  # quality is measured by training.evaluate, not here
    session = ort.InferenceSession(str(tmp_path / "m" / MODEL_FILE))
    state = checkpoint.load(cgan_checkpoint)
    spec = NetworkSpec(**state["spec"])
    generator = generator_from_checkpoint(state)
    cfg = state["config"]
    batchnorm.reestimate(generator, spec, BN_BATCHES, cfg["batch_size"], cfg["seed"])
    for batch in (1, 3, 64):
        feed = example_inputs(spec, batch, seed=100 + batch)
        (image,) = session.run(["image"], feed)
        assert image.shape == (batch, 1, 28, 28)
        assert image.min() >= -1 and image.max() <= 1
        with torch.no_grad():
            expected = generator(torch.from_numpy(feed["z"]), torch.from_numpy(feed["y"]))
        assert np.abs(image - expected.numpy()).max() <= 1e-4


def test_parity_check_fails_loudly_on_a_different_generator(cgan_checkpoint, tmp_path) -> None:
    export(cgan_checkpoint, tmp_path / "m")
    state = checkpoint.load(cgan_checkpoint)
    spec = NetworkSpec(**state["spec"])
    other = generator_from_checkpoint(state)
    with torch.no_grad():
        next(other.parameters()).add_(0.5)  # not the weights that were exported
    with pytest.raises(ExportError, match="parity check failed"):
        parity(other, spec, tmp_path / "m" / MODEL_FILE, 1e-4)


def test_fp16_variant_keeps_float32_io_within_tolerance(cgan_checkpoint, tmp_path) -> None:
    card = export(cgan_checkpoint, tmp_path / "h", fp16=True)
    assert card.precision == "fp16"
    session = ort.InferenceSession(str(tmp_path / "h" / MODEL_FILE))
    assert session.get_inputs()[0].type == "tensor(float)"
    assert card.training.export_parity_max_abs_diff <= 2e-2


def test_batch_norm_reestimation_averages_batch_statistics_of_the_ema_weights(
    cgan_checkpoint,
) -> None:
    state = checkpoint.load(cgan_checkpoint)
    spec = NetworkSpec(**state["spec"])
    generator = generator_from_checkpoint(state)
    norms = batchnorm.batch_norms(generator)
    assert norms and state["ema"] is not None
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    seen: list[torch.Tensor] = []  # the first layer's per-batch channel means
    hook = norms[0].register_forward_hook(
        lambda _m, inputs, _out: seen.append(inputs[0].mean(dim=(0, 2, 3)))
    )
    assert batchnorm.reestimate(generator, spec, batches=6, batch_size=32, seed=1) == 6
    hook.remove()
    assert not generator.training and len(seen) == 6
    # Cumulative average (momentum None): every batch weighs the same.
    assert torch.allclose(norms[0].running_mean, torch.stack(seen).mean(0), atol=1e-5)
    assert all(m.momentum == 0.1 and int(m.num_batches_tracked) == 6 for m in norms)
    for m, (mean, var) in zip(norms, before, strict=True):
        assert not torch.allclose(m.running_mean, mean) and not torch.allclose(m.running_var, var)
    assert batchnorm.reestimate(generator, spec, batches=0, batch_size=32) == 0


def test_export_reestimates_batch_norm_before_parity_and_can_skip_it(
    cgan_checkpoint, tmp_path
) -> None:
    calibrated = export(cgan_checkpoint, tmp_path / "a", bn_batches=5)
    as_trained = export(cgan_checkpoint, tmp_path / "b", bn_batches=0)
    assert calibrated.training.bn_batches == 5 and as_trained.training.bn_batches == 0
    assert calibrated.sha256 != as_trained.sha256  # the statistics reached the file
    for card in (calibrated, as_trained):
        assert card.training.export_parity_max_abs_diff <= 1e-4
    measured = Metrics(evaluator="test", samples=10, fd=1.0, fd_floor=0.5, fd_ratio=2.0,
                       diversity=0.9, diversity_ok=True, class_accuracy=0.5,
                       per_class_accuracy=[0.5] * 10)  # fmt: skip
    calibrated.model_copy(update={"metrics": measured}).save(tmp_path / "a")
    again = export(cgan_checkpoint, tmp_path / "a", bn_batches=5)
    assert again.sha256 == calibrated.sha256  # seeded: a re-export gives the same file
    assert ModelCard.load(tmp_path / "a").metrics == measured  # so its measurements stay


def test_export_cli_rejects_a_corrupt_checkpoint(tmp_path) -> None:
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"\x00" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "training.export", str(broken), str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "corrupt or unreadable" in result.stderr and str(broken) in result.stderr
    assert not (tmp_path / "out" / MODEL_FILE).exists()


def test_card_command_drops_resume_because_resuming_is_exact() -> None:
    cmd = "python -m training --arch cgan --resume 'runs/a b/checkpoint.pt' --epochs 8"
    assert reproducing_command(cmd) == "python -m training --arch cgan --epochs 8"
    assert reproducing_command("python -m training --resume=x.pt --seed 1") == (
        "python -m training --seed 1"
    )
