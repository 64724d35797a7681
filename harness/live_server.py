"""Start a real `bentoml serve` on loopback, for tests and benchmarks.

    with LiveServer(models_dir=Path("models"), env={"GAN_BATCHING": "adaptive"}) as server:
        requests.post(f"{server.url}/generate", json={"n": 4, "seed": 1})

By default it serves this repo (its bentofile) with a private, throw-away BENTOML_HOME and
tracking off. `target` serves something else, a built bento's tag or path for instance, and
`bentoml_home` points at the store that holds it:

    LiveServer(target=str(bento_path), bentoml_home=store, cwd=tmp_path,
               env={"GAN_MODELS_DIR": None})  # None: unset, so the bento's own models/ load

Leaving the block terminates the whole process group (API workers and the batching service).
Start-up failures raise `ServerExited` / `ServerNotReady` with the tail of the server's log.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import REPO_ROOT
from harness.server_process import (
    ServerExited,
    ServerNotReady,
    ServerProcess,
    ServerStartError,
    free_port,
)

__all__ = ["LiveServer", "ServerExited", "ServerNotReady", "ServerStartError", "free_port"]

BENTOML = Path(sys.executable).parent / "bentoml"


class LiveServer(ServerProcess):
    name = "bentoml serve"

    def __init__(
        self,
        models_dir: Path | None = None,
        port: int | None = None,
        env: Mapping[str, str | None] | None = None,
        ready_timeout: float = 90.0,
        *,
        target: str | None = None,
        bentoml_home: Path | None = None,
        cwd: Path = REPO_ROOT,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.models_dir = models_dir
        self.target = target
        self.extra_args = list(extra_args)
        self._home = None if bentoml_home else tempfile.TemporaryDirectory(prefix="bentoml-home-")
        home = str(bentoml_home) if bentoml_home else self._home.name  # type: ignore[union-attr]
        overrides: dict[str, str | None] = {"BENTOML_HOME": home, "BENTOML_DO_NOT_TRACK": "true"}
        if models_dir is not None:
            overrides["GAN_MODELS_DIR"] = str(models_dir)
        overrides.update(env or {})
        super().__init__(
            self._command, env=overrides, cwd=cwd, port=port, ready_timeout=ready_timeout
        )

    def _command(self, port: int) -> list[str]:
        target = [self.target] if self.target else []
        return [
            str(BENTOML),
            "serve",
            *target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *self.extra_args,
        ]

    def close(self) -> None:
        super().close()
        if self._home is not None:
            self._home.cleanup()
