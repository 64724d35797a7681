"""The job runner: one thread per API worker that claims pending jobs and runs them.

A job runs chunk by chunk through the background lane (service/batching/background.py),
writes each chunk to `.<task_id>.<format>.part` in the results folder, reports progress
to the store every `PROGRESS_EVERY_S` (reading back a cancel), and when all images are
written renames the file to `<task_id>.<format>` before it marks the job completed: a
reader never sees a half-written file under a completed job. A failure (an unwritable or
full results folder, an inference error) removes the partial file and marks the job
`failed` with the reason. Between jobs the thread housekeeps: jobs whose process died are
marked `interrupted`, results past their time to live are deleted (`expired`), and the
`gan_jobs{state}` gauge is refreshed.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from service.batching.background import BackgroundLane
from service.jobs.spec import JobSpec
from service.jobs.store import FAILED, INTERRUPTED, RUNNING, JobStore, runner_alive
from service.jobs.writers import open_writer
from service.metrics import record_job_images, set_job_states
from service.settings import JobLimits

logger = logging.getLogger("service.jobs")

PROGRESS_EVERY_S = 0.5
IDLE_POLL_S = 1.0
HOUSEKEEP_EVERY_S = 5.0


def result_path(results_dir: Path, task_id: str, fmt: str) -> Path:
    return results_dir / f"{task_id}.{fmt}"


def partial_path(results_dir: Path, task_id: str, fmt: str) -> Path:
    return results_dir / f".{task_id}.{fmt}.part"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def discard(path: Path) -> None:
    """Remove a file if it is there; a folder that cannot even be listed holds nothing."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def lower_priority(nice: int) -> None:
    """Nice this thread only (Linux applies setpriority to a thread id)."""
    if nice and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def describe_os_error(exc: OSError, folder: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the results folder {folder} is full: {exc.strerror}"
    return f"cannot write the result in the results folder {folder}: {exc}"


class Canceled(Exception):
    pass


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        limits: JobLimits,
        lane: BackgroundLane,
        ident: str,
        models: list[str],
    ) -> None:
        self.store = store
        self.models = models
        self.limits = limits
        self.lane = lane
        self.ident = ident
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._current: tuple[str, JobSpec] | None = None
        self._unended: tuple[str, str] | None = None  # (task_id, error) not yet marked failed
        self._housekept = 0.0
        self.thread = threading.Thread(target=self._main, name="jobs", daemon=True)

    def start(self) -> None:
        self.thread.start()
        atexit.register(self.stop)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """At process exit: the running job cannot finish here; say so instead of hanging."""
        self._stop.set()
        current = self._current
        if current is not None:
            task_id, spec = current
            self.store.end(
                task_id,
                INTERRUPTED,
                "the server shut down while it ran; POST /jobs/retry makes the same data set",
                (RUNNING,),
            )
            discard(partial_path(self.limits.results_dir, task_id, spec.format))

    def _main(self) -> None:
        lower_priority(self.limits.nice)
        while not self._stop.is_set():
            try:
                self._end_unended()
                self.housekeep()
                claimed = self.store.claim(self.ident)
                if claimed is None:
                    self._wake.wait(IDLE_POLL_S)
                    self._wake.clear()
                    continue
                self._current = claimed
                self.run_job(*claimed)
            except Exception as exc:  # the runner must outlive any one job or store hiccup
                logger.exception("job runner error")
                if self._current is not None:
                    self._unended = (self._current[0], f"{type(exc).__name__}: {exc}")
                    self._current = None
                    # The store may be what failed (a write lock held past its timeout):
                    # this runner's process is alive, so nothing else would end the job.
                    with contextlib.suppress(Exception):
                        self._end_unended()
                self._stop.wait(IDLE_POLL_S)
            finally:
                self._current = None

    def _end_unended(self) -> None:
        """Mark failed the job whose failure the store could not record when it happened."""
        if self._unended is not None:
            task_id, message = self._unended
            self.store.end(task_id, FAILED, message, (RUNNING,))
            self._unended = None

    def housekeep(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._housekept < HOUSEKEEP_EVERY_S:
            set_job_states(self.store.counts(self.models))
            return
        self._housekept = now
        results = self.limits.results_dir
        for task_id in self.store.reap(runner_alive):
            logger.warning("job %s interrupted: the process running it is gone", task_id)
            for fmt in ("npz", "tar"):
                discard(partial_path(results, task_id, fmt))
        for task_id in self.store.expire(self.limits.ttl_s):
            for fmt in ("npz", "tar"):
                discard(result_path(results, task_id, fmt))
        set_job_states(self.store.counts(self.models))

    def run_job(self, task_id: str, spec: JobSpec) -> None:
        results = self.limits.results_dir
        partial = partial_path(results, task_id, spec.format)
        logger.info("job %s: %d images of %s as %s", task_id, spec.total, spec.model, spec.format)
        set_job_states(self.store.counts(self.models))
        try:
            results.mkdir(parents=True, exist_ok=True)
            self._generate(task_id, spec, partial)
            size, digest = partial.stat().st_size, sha256_file(partial)
            final = result_path(results, task_id, spec.format)
            os.replace(partial, final)
            if not self.store.finish(task_id, size, digest):
                discard(final)  # cancelled during the last chunk
                raise Canceled
            logger.info("job %s completed: %d bytes", task_id, size)
        except Canceled:
            discard(partial)
            logger.info("job %s cancelled", task_id)
        except OSError as exc:
            discard(partial)
            message = describe_os_error(exc, results)
            logger.warning("job %s failed: %s", task_id, message)
            self.store.end(task_id, FAILED, message, (RUNNING,))
        except Exception as exc:
            discard(partial)
            logger.exception("job %s failed", task_id)
            self.store.end(task_id, FAILED, f"{type(exc).__name__}: {exc}", (RUNNING,))
        set_job_states(self.store.counts(self.models))

    def _generate(self, task_id: str, spec: JobSpec, partial: Path) -> None:
        writer = open_writer(partial, spec)
        started = last = time.monotonic()
        done = 0
        try:
            while done < spec.total:
                n = min(self.limits.chunk_images, spec.total - done)
                z, y = spec.inputs(done, n)
                writer.write(done, self.lane.run(spec.model, z, y))
                done += n
                record_job_images(spec.model, n)
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY_S or done == spec.total:
                    last = now
                    rate = done / max(now - started, 1e-9)
                    if not self.store.progress(task_id, done, rate):
                        raise Canceled
                    if self._stop.is_set():
                        raise Canceled
        finally:
            writer.close()
