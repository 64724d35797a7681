"""The servers under test, started through the harness (`harness.server_process`) on a free
loopback port: bench's reference servers as plain subprocesses, the service as `LiveServer`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.live_server import LiveServer
from harness.server_process import ServerProcess
from service.settings import Settings

PY = sys.executable
READY_TIMEOUT_S = 180.0  # a loaded CI machine can take minutes to warm every worker up


class Running:
    """A started server: its URL, its process group leader, and the CPU it has used."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        """Leader of its own process group (workers are its children)."""
        return self.server.pid

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


def naive(port: int, workers: int = 1) -> list[str]:
    return [PY, "-m", "bench.naive_server", "--port", str(port), "--workers", str(workers)]


def bare(port: int, workers: int = 1) -> list[str]:
    return [PY, "-m", "bench.bare_server", "--port", str(port), "--workers", str(workers)]


@contextlib.contextmanager
def python_server(command: Callable[[int], list[str]], env: dict[str, str]) -> Iterator[Running]:
    """A reference server (`command(port)`), ready once its /readyz answers."""
    name = command.func.__name__ if isinstance(command, functools.partial) else "server"
    with ServerProcess(command, env=env, ready_timeout=READY_TIMEOUT_S, name=name) as server:
        yield Running(server)


@contextlib.contextmanager
def bentoml_service(env: dict[str, str]) -> Iterator[Running]:
    """`bentoml serve` of this repo (private BENTOML_HOME)."""
    with LiveServer(env=env, ready_timeout=READY_TIMEOUT_S) as live:
        yield Running(live)


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
