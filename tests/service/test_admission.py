"""AdmissionControl without a server: shedding past the bound, the derived bound, start
deadlines and departed clients through a real MicroBatcher (a sleeping stand-in session)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from service.batching.admission import AdmissionControl, Ticket, default_bound
from service.batching.microbatcher import MicroBatcher
from service.errors import Overloaded


class Slow:
    """A backend over one MicroBatcher whose 'session' sleeps 50 ms per batch."""

    def __init__(self) -> None:
        self.batcher = MicroBatcher("m", self._run, max_batch_size=64, batches_in_flight=1)
        self.ran = 0

    def _run(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        time.sleep(0.05)
        self.ran += len(z)
        return z

    async def run(
        self, model: str, z: np.ndarray, y: np.ndarray | None, ticket: Ticket | None = None
    ) -> np.ndarray:
        return await self.batcher.run(z, y, ticket)

    async def providers(self) -> dict[str, str]:
        return {"m": "CPUExecutionProvider"}

    async def capacity(self) -> dict[str, float]:
        return {"m": 1280.0}  # 64 images in 50 ms


def control(bound: int | None, timeout_ms: int = 10_000) -> tuple[AdmissionControl, Slow]:
    backend = Slow()
    return AdmissionControl(backend, {"m": bound}, timeout_ms, 1000, 1), backend


def z(n: int) -> np.ndarray:
    return np.zeros((n, 4), np.float32)


@pytest.mark.parametrize("bound", [128, None])
def test_requests_past_the_bound_are_shed_at_once(bound: int | None) -> None:
    admission, backend = control(bound)

    async def main() -> list[object]:
        await admission.run("m", z(1), None)  # the first request measures capacity
        return await asyncio.gather(
            *(admission.run("m", z(64), None) for _ in range(12)), return_exceptions=True
        )

    results = asyncio.run(main())
    shed = [r for r in results if isinstance(r, Overloaded)]
    expected_bound = bound or default_bound(1280.0, 1000)  # 640
    assert len(shed) == 12 - expected_bound // 64
    assert all(r.reason == "queue_full" and r.retry_after_s == 1 for r in shed)
    assert backend.ran == 1 + 64 * (12 - len(shed))
    assert admission.queued["m"] == 0


def test_a_request_not_started_by_its_deadline_is_withdrawn_unrun() -> None:
    admission, backend = control(10_000, timeout_ms=120)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(admission.run("m", z(64), None) for _ in range(8)), return_exceptions=True
        )

    results = asyncio.run(main())
    late = [r for r in results if isinstance(r, Overloaded)]
    assert late and all(r.reason == "deadline" for r in late)
    assert backend.ran == 64 * (8 - len(late))


def test_a_departed_client_is_never_computed() -> None:
    backend = Slow()

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()
        tickets = [Ticket(loop.time() + 10, gone) for _ in range(6)]
        calls = [asyncio.ensure_future(backend.run("m", z(64), None, t)) for t in tickets]
        await asyncio.sleep(0.01)  # the first batch is running, five wait
        gone.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        withdrawn = sum(type(r).__name__ == "NotStarted" for r in results)
        return withdrawn, backend.ran

    withdrawn, ran = asyncio.run(main())
    assert withdrawn >= 4 and ran == 64 * (6 - withdrawn)
