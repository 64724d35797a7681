"""Real (short) training runs on a Fashion-MNIST subset: outputs, learning, exact resume, DDP."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO_ROOT
from training import checkpoint
from training.cli import main as train_main

ROOT = REPO_ROOT
SMALL = ["--dataset", "fashion-mnist", "--batch-size", "64", "--width", "8", "--threads", "1"]


def read_rows(run: Path) -> list[dict]:
    with open(run / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_short_run_writes_outputs_and_separates_real_from_fake(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*SMALL, "--arch", "dcgan", "--loss", "bce", "--epochs", "2", "--limit", "1024",
            "--log-every", "1", "--out", str(out)]  # fmt: skip
    assert train_main(args) == 0
    assert (out / "samples" / "epoch_0001.png").exists()
    assert (out / "samples" / "epoch_0002.png").exists()
    assert (out / "losses.png").stat().st_size > 0
    rows = read_rows(out)
    assert len(rows) == 2 * (1024 // 64)
    gap = [float(r["d_real"]) - float(r["d_fake"]) for r in rows]
    # At initialisation D cannot tell real from fake; after training it clearly can.
    assert abs(gap[0]) < 0.5
    assert sum(gap[-5:]) / 5 > gap[0] + 0.5
    state = checkpoint.load(out / "checkpoint.pt")
    assert state["epoch"] == 2 and state["step"] == len(rows)
    assert state["ema"] is not None


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    common = [*SMALL, "--arch", "cgan", "--loss", "hinge", "--spectral-norm", "--limit", "512",
              "--log-every", "1", "--seed", "3"]  # fmt: skip
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main([*common, "--epochs", "2", "--out", str(straight)]) == 0
    assert train_main([*common, "--epochs", "1", "--out", str(split)]) == 0
    resumed = ["--epochs", "2", "--out", str(split), "--resume", str(split / "checkpoint.pt")]
    assert train_main([*common, *resumed]) == 0
    expected, got = read_rows(straight), read_rows(split)
    assert len(expected) == len(got) == 2 * (512 // 64)
    for a, b in zip(expected[8:], got[8:], strict=True):  # the resumed epoch
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), (key, a)


def test_ddp_with_two_gloo_processes_and_rank_zero_writes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "training", *SMALL, "--arch", "cgan", "--epochs", "1", "--limit", "512",
           "--log-every", "1", "--out", str(out)]  # fmt: skip
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("training cgan") == 1  # only rank 0 talks
    rows = read_rows(out)
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and len(steps) == 512 // 64  # one writer, no duplicates
    state = checkpoint.load(out / "checkpoint.pt")
    assert state["device"] == "cpu x2"
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.json", "losses.csv", "losses.png", "samples",
    ]  # fmt: skip


def test_unknown_data_set_and_corrupt_checkpoint_fail_clearly(tmp_path: Path, capsys) -> None:
    assert train_main(["--dataset", "imagenet", "--out", str(tmp_path / "x")]) == 2
    assert "unknown data set 'imagenet'" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    assert train_main([*SMALL, "--resume", str(broken), "--out", str(tmp_path / "y")]) == 2
    assert "corrupt or unreadable" in capsys.readouterr().err
