"""Start a real `bentoml serve` of this repo on loopback, for tests and benchmarks.

    with LiveServer(models_dir=Path("models"), env={"GAN_BATCHING": "adaptive"}) as server:
        requests.post(f"{server.url}/generate", json={"n": 4, "seed": 1})

The server runs in its own process group with a private BENTOML_HOME and tracking off;
leaving the block terminates the whole group (API workers and the batching service).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from harness import REPO_ROOT as REPO

BENTOML = Path(sys.executable).parent / "bentoml"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerExited(RuntimeError):
    """`bentoml serve` exited before it became ready; `.output` holds what it printed."""

    def __init__(self, returncode: int, output: str) -> None:
        super().__init__(f"bentoml serve exited with {returncode}:\n{output[-4000:]}")
        self.returncode = returncode
        self.output = output


class LiveServer:
    def __init__(
        self,
        models_dir: Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 90.0,
    ) -> None:
        self.models_dir = models_dir
        self.port = port or free_port()
        self.env_overrides = dict(env or {})
        self.ready_timeout = ready_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._home = tempfile.TemporaryDirectory(prefix="bentoml-home-")
        fd, log = tempfile.mkstemp(prefix="bentoml-serve-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(BENTOML_HOME=self._home.name, BENTOML_DO_NOT_TRACK="true")
        if self.models_dir is not None:
            env["GAN_MODELS_DIR"] = str(self.models_dir)
        env.update(self.env_overrides)
        return env

    def start(self) -> LiveServer:
        log = open(self._log_path, "wb")  # noqa: SIM115 (the child keeps writing to it)
        self.proc = subprocess.Popen(
            [str(BENTOML), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches every worker
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                error = ServerExited(self.proc.returncode, self.output())
                self.stop()  # `with` never reaches __exit__ when start() raises
                self._cleanup()
                raise error
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.25)
        error = TimeoutError(
            f"server not ready after {self.ready_timeout}s:\n{self.output()[-4000:]}"
        )
        self.stop()
        self._cleanup()
        raise error

    def output(self) -> str:
        return self._log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the arbiter leads its own process group
        if self.proc.poll() is not None:  # the arbiter is gone; sweep workers it left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):  # workers that outlived the arbiter
            os.killpg(pgid, signal.SIGKILL)

    def __enter__(self) -> LiveServer:
        return self.start()

    def _cleanup(self) -> None:
        self._home.cleanup()
        self._log_path.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._cleanup()
