"""Keep the cyclic garbage collector's pauses short, and measure them.

A started worker holds about 110,000 container objects (BentoML, pydantic, ONNX Runtime,
NumPy, the models' sessions) that are never garbage. Every full (generation 2) collection
walks all of them with the event loop stopped: 116-133 ms on average on a loaded 2-core
machine, about once per worker every 1,500 requests, and every request in flight on that
worker waits it out. `gc.freeze()` once start-up is done moves them to a permanent
generation that collections skip, so a full collection walks only what requests made since
(13-19 ms). README "Batching" has the measurement (`python -m bench.gc_pauses`).

The youngest generation is collected after `GAN_GC_YOUNG_THRESHOLD` net allocations of container
objects (Python's default is 700). With 64 clients in flight a worker holds thousands of
young objects whose number swings by more than 700 from one request to the next, so at
700 it collected about 85 times per 1,000 requests, 0.4 ms each; at 7,000 about once, for
2-3 ms, and the cyclic garbage it leaves for later is a few thousand objects at most.

Every collection's wall time is exported as `gan_gc_pause_seconds{generation}`. The
collector calls back in the middle of whatever allocated, possibly while that thread holds
prometheus_client's lock, so the callback only appends to a list; a thread moves the
pauses into the histogram once a second.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from service.metrics import record_gc_pause
from service.settings import Settings

logger = logging.getLogger("service.heap")

FLUSH_EVERY_S = 1.0

_pauses: list[tuple[int, float]] = []
_started: list[float] = []
_watching = threading.Lock()
_installed = False


def _on_collection(phase: str, info: dict) -> None:
    # No locks, no logging, no metrics here: see the module docstring.
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        _pauses.append((info["generation"], time.perf_counter() - _started.pop()))


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY_S)
        flush()


def flush() -> None:
    """Move the pauses recorded so far into `gan_gc_pause_seconds`."""
    global _pauses
    pauses, _pauses = _pauses, []
    for generation, seconds in pauses:
        record_gc_pause(generation, seconds)


def watch_collections() -> None:
    """Record every collection's pause from now on (once per process)."""
    global _installed
    with _watching:
        if _installed:
            return
        _installed = True
        gc.callbacks.append(_on_collection)
        threading.Thread(target=_flush_forever, name="gc-pauses", daemon=True).start()


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from later collections; returns
    how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def settle(settings: Settings) -> None:
    """Called once a worker has started (sessions built and warmed up)."""
    watch_collections()
    gc.set_threshold(settings.gc_young_threshold, *gc.get_threshold()[1:])
    frozen = "nothing frozen"
    if settings.gc_freeze:
        frozen = f"froze {freeze_startup_heap()} start-up objects"
    logger.info(
        "garbage collection: %s, young generation collected every %d allocations",
        frozen,
        settings.gc_young_threshold,
    )
