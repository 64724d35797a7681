"""Schemathesis against the live server: every operation of /docs.json, all checks, a fixed
seed, bounded in examples. 0 server errors and 0 schema violations, or the test fails with
schemathesis's own report (each failure with a curl line to reproduce it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.live_server import LiveServer

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 25  # per operation and phase: about 2 minutes on 2 shared cores


def test_schemathesis_finds_nothing(server: LiveServer, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server.url}/docs.json",
        "--checks",
        "all",
        "--seed",
        "1",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = run.stdout[-12000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "0 failures" in report or "No issues found" in report or "passed" in report, report
