"""Job state in SQLite: one file every API worker of a server opens, kept across restarts.

A row per job holds its spec, state, progress and result facts. Workers coordinate only
through it: any worker answers status, cancel and result requests for any job; a worker's
runner claims the oldest pending job with an atomic update; a cancel is a state change
the runner reads back at its next progress report. A running job records its runner
(host, pid, process start time), so a job whose process died is found and marked
`interrupted` instead of showing `in_progress` forever.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.jobs.spec import JobSpec

PENDING, RUNNING, COMPLETED = "pending", "in_progress", "completed"
FAILED, CANCELED, INTERRUPTED, EXPIRED = "failed", "canceled", "interrupted", "expired"
STATES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELED, INTERRUPTED, EXPIRED)
ACTIVE = (PENDING, RUNNING)
# A runner on another host is only known dead by silence: no progress report for this long.
FOREIGN_RUNNER_SILENCE_S = 600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    executed_at REAL,
    completed_at REAL,
    done INTEGER NOT NULL DEFAULT 0,
    rate REAL,
    reserved_bytes INTEGER NOT NULL,
    result_bytes INTEGER,
    sha256 TEXT,
    error TEXT,
    runner TEXT,
    heartbeat_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""


class JobRejected(Exception):
    """A submit the limits turn away: a 4xx naming the field or the limit."""

    def __init__(self, field: str, message: str, status: int) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True)
class JobRow:
    task_id: str
    status: str
    spec: JobSpec
    request: dict
    created_at: float
    executed_at: float | None
    completed_at: float | None
    done: int
    rate: float | None
    reserved_bytes: int
    result_bytes: int | None
    sha256: str | None
    error: str | None
    runner: str | None
    heartbeat_at: float | None


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def runner_identity() -> str:
    """host:pid:start of this process: unique even when a pid is reused."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def runner_alive(runner: str, heartbeat_at: float | None, now: float) -> bool:
    host, pid, start = runner.rsplit(":", 2)
    if host != socket.gethostname():
        return heartbeat_at is not None and now - heartbeat_at < FOREIGN_RUNNER_SILENCE_S
    return _start_ticks(int(pid)) == start


class JobStore:
    def __init__(self, path: Path, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another's lock
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, opened once: the runner asks every second, and opening
        a connection (file, WAL set-up) cost more CPU than its queries."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never share one across a fork
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: check-then-write sequences are atomic across worker processes."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT too: an open transaction would hold the write lock
                # against every other worker for as long as this thread lives.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def submit(
        self, spec: JobSpec, request: dict, max_active: int, max_storage_bytes: int, field: str
    ) -> str:
        """A new pending job's id, or JobRejected when the limits do not leave room for it."""
        reserve = spec.estimated_bytes()
        if reserve > max_storage_bytes:
            raise JobRejected(
                field,
                f"the result would take up to {reserve} bytes, more than the results folder "
                f"may hold ({max_storage_bytes}, GAN_JOBS_MAX_STORAGE_BYTES)",
                422,
            )
        task_id = uuid.uuid4().hex
        with self._transaction() as conn:
            active = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE status IN (?, ?)", ACTIVE
            ).fetchone()[0]
            if active >= max_active:
                raise JobRejected(
                    "jobs",
                    f"{active} jobs are pending or running, the most allowed "
                    f"(GAN_JOBS_MAX_ACTIVE={max_active}); retry when one ends",
                    429,
                )
            used = conn.execute(
                "SELECT COALESCE(SUM(CASE WHEN status = ? THEN result_bytes "
                "ELSE reserved_bytes END), 0) FROM jobs WHERE status IN (?, ?, ?)",
                (COMPLETED, *ACTIVE, COMPLETED),
            ).fetchone()[0]
            if used + reserve > max_storage_bytes:
                raise JobRejected(
                    "jobs",
                    f"results kept and jobs running hold {used} of {max_storage_bytes} bytes "
                    f"(GAN_JOBS_MAX_STORAGE_BYTES); this job needs up to {reserve}; retry once "
                    "results expire (GAN_JOBS_TTL_S)",
                    429,
                )
            conn.execute(
                "INSERT INTO jobs (task_id, status, spec, request, created_at, reserved_bytes) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    PENDING,
                    json.dumps(spec.to_json()),
                    json.dumps(request),
                    time.time(),
                    reserve,
                ),
            )
        return task_id

    def get(self, task_id: str) -> JobRow | None:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM jobs WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        data = dict(row)
        data["spec"] = JobSpec.from_json(json.loads(data["spec"]))
        data["request"] = json.loads(data["request"])
        return JobRow(**data)

    def claim(self, runner: str) -> tuple[str, JobSpec] | None:
        """The oldest pending job, now running under `runner`; None when nothing waits."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT task_id, spec FROM jobs WHERE status = ? ORDER BY created_at LIMIT 1",
                (PENDING,),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            conn.execute(
                "UPDATE jobs SET status = ?, runner = ?, executed_at = ?, heartbeat_at = ? "
                "WHERE task_id = ?",
                (RUNNING, runner, now, now, row[0]),
            )
        return row[0], JobSpec.from_json(json.loads(row[1]))

    def progress(self, task_id: str, done: int, rate: float | None) -> bool:
        """Record progress; False when the job is no longer running (it was cancelled)."""
        with self._connect() as conn:
            cur = conn.execute(
                "UPDATE jobs SET done = ?, rate = ?, heartbeat_at = ? "
                "WHERE task_id = ? AND status = ?",
                (done, rate, time.time(), task_id, RUNNING),
            )
            return cur.rowcount == 1

    def finish(self, task_id: str, result_bytes: int, sha256: str) -> bool:
        """Mark a running job completed; False when it was cancelled meanwhile."""
        with self._connect() as conn:
            cur = conn.execute(
                "UPDATE jobs SET status = ?, completed_at = ?, result_bytes = ?, sha256 = ?, "
                "error = NULL WHERE task_id = ? AND status = ?",
                (COMPLETED, time.time(), result_bytes, sha256, task_id, RUNNING),
            )
            return cur.rowcount == 1

    def end(self, task_id: str, status: str, error: str, only_if: tuple[str, ...]) -> bool:
        """Move a job in one of the `only_if` states to `status` with a message."""
        marks = ",".join("?" * len(only_if))
        with self._connect() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET status = ?, error = ?, completed_at = ? "
                f"WHERE task_id = ? AND status IN ({marks})",
                (status, error, time.time(), task_id, *only_if),
            )
            return cur.rowcount == 1

    def reap(self, alive: Callable[[str, float | None, float], bool]) -> list[str]:
        """Mark running jobs whose runner process is gone `interrupted`; their ids."""
        now = time.time()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT task_id, runner, heartbeat_at FROM jobs WHERE status = ?", (RUNNING,)
            ).fetchall()
        lost = [task_id for task_id, runner, beat in rows if not alive(runner, beat, now)]
        message = (
            "the server process running it stopped (restart, crash or scale-down); "
            "POST /jobs/retry makes the same data set again"
        )
        return [t for t in lost if self.end(t, INTERRUPTED, message, (RUNNING,))]

    def expire(self, ttl_s: float) -> list[str]:
        """Completed jobs older than the time to live become `expired`; their ids."""
        cutoff = time.time() - ttl_s
        with self._transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT task_id FROM jobs WHERE status = ? AND completed_at < ?",
                    (COMPLETED, cutoff),
                )
            ]
            conn.executemany(
                "UPDATE jobs SET status = ?, error = ? WHERE task_id = ?",
                [
                    (EXPIRED, f"the result was deleted after {ttl_s:g} s (GAN_JOBS_TTL_S)", t)
                    for t in ids
                ],
            )
        return ids

    def counts(self, models: list[str]) -> dict[tuple[str, str], int]:
        """Jobs per (model, state), every pair of `models` and STATES present (0 if none)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT json_extract(spec, '$.model'), status, COUNT(*) FROM jobs GROUP BY 1, 2"
            ).fetchall()
        counts = {(model, state): 0 for model in models for state in STATES}
        counts.update({(model, state): int(n) for model, state, n in rows})
        return counts
