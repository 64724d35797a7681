"""What the numbers were measured on: CPU, memory, load, versions, competing processes."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import onnxruntime as ort

from bench.common import ROOT

PACKAGES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "bentoml",
    "numpy",
    "pillow",
    "starlette",
    "uvicorn",
    "aiohttp",
    "prometheus-client",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        return kib / 2**20
    except (OSError, StopIteration):
        return float("nan")


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# Other work that competes for the CPU during a benchmark: training, other load tests, tests.
COMPETING = r"python -m (training|bench\.(soak|overload|jobs))|pytest"


def busy_processes() -> list[str]:
    """Training runs, other load tests and test runs on this machine during the benchmark
    (they would skew every number)."""
    try:
        out = subprocess.run(
            ["pgrep", "-af", COMPETING], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [
        line for line in out.splitlines() if "pgrep" not in line and not _stopped(line.split()[0])
    ]


def _stopped(pid: str) -> bool:
    """A process paused with SIGSTOP (state T) takes no CPU while it stays paused."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def describe() -> dict[str, object]:
    return {
        "cpu": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "memory": f"{memory_gib():.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "ort_providers": ", ".join(ort.get_available_providers()),
        "versions": versions(),
        "commit": git_commit(),
    }
