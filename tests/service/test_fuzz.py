"""Schemathesis against the live server: every operation of /docs.json, all checks, a fixed
seed, bounded in examples. 0 server errors and 0 schema violations, or the test fails with
schemathesis's own report (each failure with a curl line to reproduce it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.live_server import LiveServer
from tests.conftest import MODELS_DIR

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 25  # per operation and phase: about 2 minutes on 2 shared cores
# The fuzzer submits jobs: small ones, few at a time, in a folder of this test's own.
JOB_LIMITS = {
    "GAN_JOBS_MAX_IMAGES": "16",
    "GAN_JOBS_MAX_ACTIVE": "2",
    "GAN_JOBS_CHUNK_IMAGES": "16",
    "GAN_JOBS_MAX_STORAGE_BYTES": str(16 << 20),
}
# A body that fits the schema may still get 422 where a rule spans fields or depends on the
# model, which JSON Schema cannot state: a job's class the model lacks or more images in all
# than GAN_JOBS_MAX_IMAGES; a walk's frames in all (waypoints x steps), a z of the wrong
# length for the chosen model, a label on an unconditional model.
CONFIG = """
[[operations]]
include-path = "/jobs/submit"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "422", "429"]

[[operations]]
include-path = "/walk"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"GAN_JOBS_DIR": str(tmp_path_factory.mktemp("jobs")), **JOB_LIMITS}
    with LiveServer(models_dir=MODELS_DIR, env=env) as live:
        yield live


def test_schemathesis_finds_nothing(server: LiveServer, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
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
