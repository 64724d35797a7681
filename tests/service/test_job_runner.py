"""The job runner against a jobs database that another process has locked: a real SQLite
store, a real ONNX Runtime engine behind the in-process lane, a real runner thread.

Every API worker's runner and routes share one SQLite file. If a write waits past the
busy timeout (another process holding the write lock), the runner must fail that job with
the reason once the store answers again, and go on running jobs: a dead runner thread in a
live process leaves its job `in_progress` for ever, since only jobs of dead processes are
reaped.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from service.batching.background import InProcessLane
from service.engine import build_engines
from service.jobs.runner import JobRunner
from service.jobs.schemas import JobRequest
from service.jobs.spec import make_spec
from service.jobs.store import JobStore, runner_identity
from service.registry import load_registry
from service.settings import JobLimits
from tests.conftest import MODELS_DIR, model_name

DCGAN = model_name(conditional=False)


def _status(store: JobStore, task_id: str) -> tuple[str, int, str | None]:
    row = store.get(task_id)
    assert row is not None
    return row.status, row.done, row.error


def _wait(
    store: JobStore, task_id: str, done: Callable[[tuple], bool], timeout: float = 60
) -> tuple:
    deadline = time.monotonic() + timeout
    while not done(status := _status(store, task_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {task_id} still {status} after {timeout} s")
        time.sleep(0.05)
    return status


def test_runner_outlives_a_store_locked_past_its_timeout(tmp_path: Path) -> None:
    registry = {name: e for name, e in load_registry(MODELS_DIR).items() if name == DCGAN}
    engines = build_engines(registry, ["CPUExecutionProvider"], 1, False)
    store = JobStore(tmp_path / "jobs.db", busy_timeout_s=0.2)
    limits = JobLimits(
        jobs_dir=tmp_path,
        results_dir=tmp_path / "results",
        max_images=1_000_000,
        max_active=4,
        max_storage_bytes=1 << 34,
        ttl_s=3600,
        chunk_images=8,
        nice=0,
    )

    def submit(total: int) -> str:
        req = JobRequest(model=DCGAN, total=total, seed=1)
        spec = make_spec(registry, req, limits.max_images)
        request = req.model_dump(mode="json", exclude_none=True)
        return store.submit(spec, request, limits.max_active, limits.max_storage_bytes, "total")

    lane = InProcessLane(SimpleNamespace(engines=engines), lambda model: False)
    runner = JobRunner(store, limits, lane, runner_identity(), list(registry))
    long_job = submit(500_000)
    runner.start()
    try:
        _wait(store, long_job, lambda s: s[0] == "in_progress" and s[1] > 0)

        # Another process takes the write lock and holds it well past the 0.2 s timeout.
        blocker = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        time.sleep(1.5)
        assert runner.thread.is_alive()
        blocker.execute("ROLLBACK")
        blocker.close()

        status, _, error = _wait(store, long_job, lambda s: s[0] != "in_progress")
        assert status == "failed" and "locked" in (error or ""), (status, error)
        assert not list((tmp_path / "results").glob(".*.part"))  # no half-written file left

        # The same runner runs the next job to the end.
        small_job = submit(20)
        runner.wake()
        status, done, _ = _wait(store, small_job, lambda s: s[0] in ("completed", "failed"))
        assert (status, done) == ("completed", 20)
        assert runner.thread.is_alive()
    finally:
        runner.stop()
        runner.thread.join(timeout=10)
