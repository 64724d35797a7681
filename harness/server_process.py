"""Run a server as a subprocess on a loopback port: start, wait until ready, stop.

    with ServerProcess(lambda port: ["python", "-m", "bench.naive_server", "--port", str(port)]):
        ...

Shared by `LiveServer` (a real `bentoml serve`) and bench's reference servers. The server
runs in its own process group, so stopping it reaches every worker it forked. Its output
goes to a log file; a server that exits or never gets ready raises an error whose message
ends with the tail of that log.

Ports: a free port is picked by binding and closing a socket, so another process can take
it before the server binds it. When that happens the server exits with "address already in
use" and is started again on a fresh port; and a ready answer only counts when it comes from
a listening socket held by this server's process group, never from a neighbour that won
the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

import requests

from harness import REPO_ROOT

LOG_TAIL = 4000  # characters of server log quoted in a start-up error
ADDRESS_IN_USE = "address already in use"


def free_port() -> int:
    """A loopback port that was free a moment ago (see the module docstring on races)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerStartError(RuntimeError):
    """The server did not become ready; `.output` holds everything it printed."""

    def __init__(self, message: str, output: str) -> None:
        tail = output[-LOG_TAIL:] or "(the server printed nothing)"
        super().__init__(f"{message}; last {LOG_TAIL} characters of its log:\n{tail}")
        self.output = output


class ServerExited(ServerStartError):
    """The server process exited before it became ready."""

    def __init__(self, name: str, returncode: int, output: str) -> None:
        super().__init__(f"{name} exited with {returncode} before it was ready", output)
        self.returncode = returncode


class ServerNotReady(ServerStartError, TimeoutError):
    """The server kept running but never answered its ready probe in time."""


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (any address), from the kernel's TCP tables."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 is the inode
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # fields after "(comm)": state ppid pgrp ...
            if int(stat.read_text().rpartition(")")[2].split()[2]) == pgid:
                pids.append(int(stat.parent.name))
    return pids


def group_listens_on(pgid: int, port: int) -> bool:
    """True when a process of group `pgid` holds the socket listening on `port`.

    Without /proc (not Linux) this cannot be told, and the answer is True.
    """
    if not Path("/proc/net/tcp").exists():
        return True
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return False
    for pid in _group_pids(pgid):
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in targets:
                        return True
    return False


class ServerProcess:
    """A server subprocess listening on 127.0.0.1, ready once `ready_path` answers 200.

    `command(port)` builds the command line for a port. `env` entries are added to this
    process's environment; a value of None removes that variable. A fixed `port` is used as
    given; without one a free port is picked, and picked again (up to `attempts` starts)
    when the server finds it taken.
    """

    name = "server"

    def __init__(
        self,
        command: Callable[[int], Sequence[str]],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path = REPO_ROOT,
        port: int | None = None,
        ready_path: str = "/readyz",
        ready_timeout: float = 90.0,
        attempts: int = 3,
        name: str | None = None,
    ) -> None:
        self.command = command
        self.env_overrides: dict[str, str | None] = dict(env or {})
        self.cwd = cwd
        self.fixed_port = port
        self.port = port or 0
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.attempts = max(1, attempts)
        if name is not None:
            self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        fd, log = tempfile.mkstemp(prefix=f"{self.name.replace(' ', '-')}-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's leading process (its process group has the same id)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(self) -> Self:
        """Start the server and wait until it is ready; on failure nothing is left running."""
        try:
            for attempt in range(1, self.attempts + 1):
                self.port = self.fixed_port or free_port()
                try:
                    self._launch()
                    self._wait_ready()
                    return self
                except ServerExited as exc:
                    port_taken = ADDRESS_IN_USE in exc.output.lower()
                    if not port_taken or self.fixed_port or attempt == self.attempts:
                        raise
                    self.stop()  # lost the port to another process: again on a new one
            raise AssertionError("unreachable: the last attempt returns or raises")
        except BaseException:
            self.close()  # `with` never reaches __exit__ when start() raises
            raise

    def _launch(self) -> None:
        with open(self._log_path, "wb") as log:  # truncated: one log per attempt
            self.proc = subprocess.Popen(
                list(self.command(self.port)),
                cwd=self.cwd,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches every worker
            )

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerExited(self.name, self.proc.returncode, self.output())
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(f"{self.url}{self.ready_path}", timeout=2)
                if answer.status_code == 200 and group_listens_on(self.proc.pid, self.port):
                    return
            time.sleep(0.25)
        raise ServerNotReady(
            f"{self.name} on port {self.port} not ready after {self.ready_timeout:.0f} s",
            self.output(),
        )

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Terminate the whole process group (SIGTERM, then SIGKILL after 20 s)."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        if self.proc.poll() is None:
            os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):  # workers that outlived the leader
            os.killpg(pgid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
