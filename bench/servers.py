"""The servers under test, started through the harness (`harness.server_process`) on a free
loopback port: bench's reference servers as plain subprocesses, the service as `LiveServer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.live_server import LiveServer
from harness.server_process import ServerProcess
from service.settings import Settings, usable_cpus

PY = sys.executable
BARE_BENTOML = "bench.bare_bentoml:BareBentoService"
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

    def connections(self) -> list[int]:
        """Client connections each process listening on the server's port holds, most first."""
        return connections_per_listener(self.pid, self.server.port)


def _tree(root: int, procs: dict[int, int]) -> set[int]:
    """`root` and its descendants, from {pid: ppid}."""
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in procs.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return tree


def _sockets(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(fd.path)
                if link.startswith("socket:["):
                    found.add(link[8:-1])
    return found


def connections_per_listener(root: int, port: int) -> list[int]:
    """For each process of `root`'s tree holding the socket listening on `port` (the API
    workers), how many established connections to that port it holds; most first."""
    listening, established = set(), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if int(f[1].rsplit(":", 1)[1], 16) != port:
                    continue
                if f[3] == "0A":
                    listening.add(f[9])
                elif f[3] == "01":
                    established.add(f[9])
    procs: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            procs[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
    holders = {
        pid: held
        for pid in _tree(root, procs)
        if (held := _sockets(pid)) & listening and _serves(pid, listening)
    }
    if len(holders) > 1:
        holders.pop(root, None)  # BentoML's arbiter holds the listener but serves nothing
    return sorted((len(held & established) for held in holders.values()), reverse=True)


def _serves(pid: int, listening: set[str]) -> bool:
    """False for a BentoML worker started with `--fd N` for another socket: it inherited
    the API listener from the arbiter but never accepts on it (the batching service)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"--fd" not in args:
        return True
    fd = args[args.index(b"--fd") + 1].decode()
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in listening
    except OSError:
        return False


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
    tree = _tree(root, {pid: ppid for pid, (ppid, _) in procs.items()})
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
def bentoml_service(env: dict[str, str], target: str | None = None) -> Iterator[Running]:
    """`bentoml serve` of this repo, or of `target` (private BENTOML_HOME)."""
    with LiveServer(env=env, ready_timeout=READY_TIMEOUT_S, target=target) as live:
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


def _bare_bentoml(env: dict[str, str]) -> contextlib.AbstractContextManager[Running]:
    return bentoml_service(env, target=BARE_BENTOML)


def _references(workers: int) -> list[Server]:
    """bare Starlette, bare BentoML and naive, each with `workers` processes."""
    processes = f"{workers} uvicorn process{'es' if workers > 1 else ''}"
    return [
        Server(
            "bare",
            "`bench/bare_server.py`: Starlette answering a precomputed PNG (the HTTP limit), "
            + processes,
            functools.partial(python_server, functools.partial(bare, workers=workers)),
        ),
        Server(
            "bare-bento",
            "`bench/bare_bentoml.py`: a BentoML service with the service's BentoML settings, "
            "validating the same body (`GenerateRequest`) and answering a precomputed PNG "
            f"(BentoML's ceiling), {workers} API worker{'s' if workers > 1 else ''}",
            _bare_bentoml,
        ),
        Server(
            "naive",
            "`bench/naive_server.py`: Starlette + ORT, one request → one "
            f"`session.run`, inline on the event loop, {processes}",
            functools.partial(python_server, functools.partial(naive, workers=workers)),
        ),
    ]


def all_servers() -> list[Server]:
    """bare, bare BentoML, naive, the service with its defaults, and the service in its other
    batching mode."""
    settings = Settings.from_env()  # what the `auto` defaults resolve to on this machine
    default, workers = settings.batching, settings.workers
    other = "adaptive" if default == "inprocess" else "inprocess"
    # The reference servers get as many processes as the service has API workers, so the
    # comparisons measure batching and the request stack, not process count.
    return [
        *_references(workers),
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


def standin_servers(models_dir: str) -> list[Server]:
    """Every server on the accelerator-shaped stand-in model (`bench/standin.py`): the
    references, and the service in each batching mode with one API worker per core and with
    one API worker."""
    workers = usable_cpus()
    env = {"GAN_MODELS_DIR": models_dir}
    servers = [dataclasses.replace(s, env=env) for s in _references(workers)]
    servers.insert(
        2,
        Server(
            "bare-bento-dflt",
            "`bench/bare_bentoml.py` with BentoML's default settings (its access log and "
            f"OpenTelemetry middleware on), {workers} API workers",
            _bare_bentoml,
            {**env, "BENCH_BENTOML_DEFAULTS": "1"},
        ),
    )
    for mode in ("inprocess", "adaptive"):
        for count in sorted({workers, 1}, reverse=True):
            servers.append(
                Server(
                    f"svc-{mode[:5]}-{count}w",
                    f"`bentoml serve`, GAN_BATCHING={mode}, GAN_WORKERS={count}",
                    bentoml_service,
                    {**env, "GAN_BATCHING": mode, "GAN_WORKERS": str(count)},
                )
            )
    return servers
