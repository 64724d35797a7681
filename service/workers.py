"""Worker start-ups in the log, and a replaced worker called out as such.

BentoML's process manager (circus) restarts a worker that dies (a crash, an OOM kill, a
`kill -9`) but logs nothing about it at its default level. Each worker therefore records its
pid per (role, worker index) in the server's own scratch folder (BentoML's Prometheus
folder, emptied at every `bentoml serve`); a worker that finds its slot held by a pid that
no longer runs says that it replaces a worker that died, and counts it in
`gan_worker_restarts_total{role}`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("service.workers")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch_folder() -> Path | None:
    """The folder the workers of one `bentoml serve` share (BentoML's Prometheus folder,
    emptied at every start); None outside BentoML's server."""
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(base) if base else None


def _slot_folder() -> Path | None:
    base = scratch_folder()
    if base is None:
        return None
    folder = base / "gan-workers"
    folder.mkdir(exist_ok=True)
    return folder


def announce(role: str) -> None:
    """Log this worker's start; if it replaces a dead one, log that as a warning."""
    from bentoml._internal.context import server_context

    index = server_context.worker_index or 1
    pid = os.getpid()
    folder = _slot_folder()
    previous = None
    if folder is not None:
        slot = folder / f"{role}-{index}.pid"
        try:
            previous = int(slot.read_text())
        except (OSError, ValueError):
            previous = None
        slot.write_text(str(pid))
    if previous is not None and previous != pid and not _alive(previous):
        from service.metrics import record_worker_restart

        record_worker_restart(role)
        logger.warning(
            "%s worker %d restarted as pid %d: its previous process %d died (crash, OOM kill "
            "or signal); the requests it held failed",
            role,
            index,
            pid,
            previous,
        )
    else:
        logger.info("%s worker %d started (pid %d)", role, index, pid)
