"""Start a server under test as a subprocess on a free loopback port; stop it afterwards."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.common import ROOT
from harness.live_server import LiveServer
from service.settings import Settings

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class Running:
    url: str
    pid: int  # leader of its own process group (workers are its children)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and its workers."""
        return tree_cpu_seconds(self.pid)


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and all its live descendants (from /proc)."""
    procs: dict[int, tuple[int, int]] = {}  # pid -> (ppid, utime + stime ticks)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process exited meanwhile
            continue
        # fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt
        # majflt cmajflt utime stime ...
        procs[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in procs.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(procs[pid][1] for pid in tree if pid in procs) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serve(
    cmd: list[str], port: int, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Iterator[Running]:
    """Run `cmd` (which must listen on 127.0.0.1:port); yield its URL and pid once ready."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(
        "w+", prefix="bench-server-", suffix=".log", delete=False
    ) as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: workers stop with it
        )
    log_path = Path(log.name)
    try:
        _wait_ready(url, proc, timeout_s, log_path)
        yield Running(url, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log_path.unlink(missing_ok=True)


def naive(port: int, workers: int = 1) -> list[str]:
    return [PY, "-m", "bench.naive_server", "--port", str(port), "--workers", str(workers)]


def bare(port: int, workers: int = 1) -> list[str]:
    return [PY, "-m", "bench.bare_server", "--port", str(port), "--workers", str(workers)]


@contextlib.contextmanager
def python_server(command: Callable[[int], list[str]], env: dict[str, str]) -> Iterator[Running]:
    port = free_port()
    with serve(command(port), port, env) as running:
        yield running


@contextlib.contextmanager
def bentoml_service(env: dict[str, str]) -> Iterator[Running]:
    """`bentoml serve` of this repo via the tests' LiveServer (private BENTOML_HOME)."""
    with LiveServer(env=env, ready_timeout=180) as live:
        assert live.proc is not None
        yield Running(live.url, live.proc.pid)


@dataclass(frozen=True)
class Server:
    name: str
    description: str
    open: Callable[[dict[str, str]], contextlib.AbstractContextManager[Running]]
    env: dict[str, str] = field(default_factory=dict)

    def start(
        self, extra_env: dict[str, str] | None = None
    ) -> contextlib.AbstractContextManager[Running]:
        return self.open({**self.env, **(extra_env or {})})


def all_servers() -> list[Server]:
    """bare, naive, the service with its defaults, and the service in its other batching mode."""
    settings = Settings.from_env()  # what the `auto` defaults resolve to on this machine
    default, workers = settings.batching, settings.workers
    other = "adaptive" if default == "inprocess" else "inprocess"
    # The reference servers get as many processes as the service has API workers, so the
    # comparisons measure batching and the request stack, not process count.
    processes = f"{workers} uvicorn process{'es' if workers > 1 else ''}"
    return [
        Server(
            "bare",
            "`bench/bare_server.py`: Starlette answering a precomputed PNG (the HTTP limit), "
            + processes,
            functools.partial(python_server, functools.partial(bare, workers=workers)),
        ),
        Server(
            "naive",
            "`bench/naive_server.py`: Starlette + ORT, one request → one "
            f"`session.run`, inline on the event loop, {processes}",
            functools.partial(python_server, functools.partial(naive, workers=workers)),
        ),
        Server(
            "service",
            "`bentoml serve` with the project defaults (GAN_BATCHING=auto → "
            f"`{default}` here, GAN_WORKERS=auto → {workers})",
            bentoml_service,
        ),
        Server(
            f"svc-{other[:5]}",
            f"`bentoml serve` with GAN_BATCHING={other}",
            bentoml_service,
            {"GAN_BATCHING": other},
        ),
    ]
