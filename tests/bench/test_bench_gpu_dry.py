"""`python -m bench.gpu --dry-run`: every step of the one-shot GPU check, on the CPU provider,
with tiny durations (the figures themselves are not checked: benchmarks are not tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import REPO_ROOT


@pytest.mark.slow
@pytest.mark.serve
def test_gpu_check_dry_run_runs_every_step_on_cpu() -> None:
    command = [
        sys.executable,
        "-m",
        "bench.gpu",
        "--dry-run",
        "--seconds",
        "0.1",
        "--load-seconds",
        "0.5",
        "--batches",
        "1",
        "8",
        "--clients",
        "1",
        "4",
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out[-3000:]
    for section in ("== 1. provider", "== 2. raw", "== 3. service", "== 4. GPU"):
        assert section in out, out
    assert "fashion-cgan         CPUExecutionProvider" in out
    assert "FELL BACK" not in out
    # FP32 and FP16, with and without IO binding, for every shipped model
    assert out.count("fp16      on") == out.count("fp32      on") >= 2
    assert out.count(" off ") >= 4
    # the service and the naive server at both client counts, with no failed request
    for name in ("service", "naive"):
        for clients in (1, 4):
            line = next(
                x for x in out.splitlines() if x.split()[:3] == [name, "single", f"c={clients}"]
            )
            assert "err 0" in line, line
    assert "no samples (nvidia-smi not found)" in out or "GPU utilisation" in out


def test_gpu_check_refuses_to_run_without_a_gpu_unless_dry() -> None:
    from bench.common import devices

    if "cuda" in devices():
        pytest.skip("a CUDA device is present: the check would run for real")
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--dry-run" in done.stderr
