"""Export: ONNX graph contract, parity with PyTorch, card validation, clear failures."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from harness import REPO_ROOT
from service.card import ModelCard, sha256_of
from training import checkpoint
from training.cli import main as train_main
from training.export import ExportError, example_inputs, export, parity, reproducing_command
from training.networks import NetworkSpec
from training.trainer import generator_from_checkpoint

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
    assert loaded.sha256 == sha256_of(tmp_path / "m" / "model.onnx")
    assert loaded.input_names == ["z", "y"] and loaded.output_names == ["image"]
    assert loaded.class_names[9] == "Ankle boot"
    assert loaded.training.epochs == 1 and "python -m training" in loaded.training.command
    session = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"))
    spec = NetworkSpec(**checkpoint.load(cgan_checkpoint)["spec"])
    generator = generator_from_checkpoint(checkpoint.load(cgan_checkpoint))
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
        parity(other, spec, tmp_path / "m" / "model.onnx", 1e-4)


def test_fp16_variant_keeps_float32_io_within_tolerance(cgan_checkpoint, tmp_path) -> None:
    card = export(cgan_checkpoint, tmp_path / "h", fp16=True)
    assert card.precision == "fp16"
    session = ort.InferenceSession(str(tmp_path / "h" / "model.onnx"))
    assert session.get_inputs()[0].type == "tensor(float)"
    assert card.metrics["export_parity_max_abs_diff"] <= 2e-2


def test_export_cli_rejects_a_corrupt_checkpoint(tmp_path) -> None:
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"\x00" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "training.export", str(broken), str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "corrupt or unreadable" in result.stderr and str(broken) in result.stderr
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_card_command_drops_resume_because_resuming_is_exact() -> None:
    cmd = "python -m training --arch cgan --resume 'runs/a b/checkpoint.pt' --epochs 8"
    assert reproducing_command(cmd) == "python -m training --arch cgan --epochs 8"
    assert reproducing_command("python -m training --resume=x.pt --seed 1") == (
        "python -m training --seed 1"
    )
