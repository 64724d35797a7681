"""Bulk generation: data sets of up to millions of labelled images as background jobs.

- `schemas.py`: the submit body and the status answer.
- `spec.py`: a request resolved against the registry (classes, seeds, output size).
- `store.py`: job state in SQLite, shared by the API workers and kept across restarts.
- `writers.py`: npz and tar result files, streamed and reproducible.
- `runner.py`: the thread in each API worker that runs jobs through the background lane.
- `routes.py`: the HTTP routes under `/jobs`.
"""

from __future__ import annotations

from typing import Any

from service import runtime
from service.batching.background import make_lane
from service.jobs.routes import jobs, jobs_app
from service.jobs.runner import JobRunner
from service.jobs.store import runner_identity
from service.settings import JobLimits

__all__ = ["jobs_app", "start_job_runner"]


def start_job_runner(backend: Any) -> JobRunner:
    """Start this API worker's job runner on `backend`'s engines (call from the service's
    `__init__`, on the event loop: the adaptive lane keeps it)."""
    state = jobs()
    models = list(runtime.registry())
    runner = JobRunner(state.store, state.limits, make_lane(backend), runner_identity(), models)
    state.runner = runner
    runner.start()
    return runner


# Read at import, so a bad GAN_JOBS_* value stops `bentoml serve` before any worker starts.
JobLimits.from_env(runtime.settings())
