"""MicroBatcher: merges concurrent calls, keeps each caller's rows, bounds batch size."""

import asyncio
import time

import numpy as np

from service.batching.microbatcher import MicroBatcher


class SlowDouble:
    """A stand-in for an ONNX session call: sleeps (releasing the GIL, as ORT does), doubles
    its input, and logs each run as (start, end, images)."""

    def __init__(self, seconds: float = 0.02, fail: bool = False) -> None:
        self.seconds = seconds  # long enough for the other callers to queue behind it
        self.fail = fail
        self.runs: list[tuple[float, float, int]] = []

    @property
    def batches(self) -> list[int]:
        return [n for *_, n in self.runs]

    def __call__(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        start = time.perf_counter()
        time.sleep(self.seconds)
        self.runs.append((start, time.perf_counter(), len(z)))
        if self.fail:
            raise RuntimeError("session failed")
        return z * 2


def test_concurrent_calls_share_batches_and_get_their_own_rows() -> None:
    run = SlowDouble()
    batcher = MicroBatcher("m", run, max_batch_size=16)

    async def main() -> list[np.ndarray]:
        inputs = [np.full((k % 3 + 1, 4), k, np.float32) for k in range(20)]
        outs = await asyncio.gather(*(batcher.run(z, None) for z in inputs))
        for z, out in zip(inputs, outs, strict=True):
            np.testing.assert_array_equal(out, z * 2)
        return outs

    asyncio.run(main())
    assert sum(run.batches) == sum(k % 3 + 1 for k in range(20))
    assert max(run.batches) <= 16
    assert len(run.batches) < 20  # at least some calls were merged


def test_a_failed_batch_fails_its_callers_and_the_batcher_recovers() -> None:
    run = SlowDouble(fail=True)
    batcher = MicroBatcher("m", run, max_batch_size=8)

    async def main() -> None:
        results = await asyncio.gather(
            *(batcher.run(np.ones((1, 2), np.float32), None) for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        run.fail = False
        out = await batcher.run(np.ones((2, 2), np.float32), None)
        np.testing.assert_array_equal(out, np.full((2, 2), 2.0))

    asyncio.run(main())


def test_class_vectors_travel_with_their_latents() -> None:
    seen = []

    def run(z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        seen.append(y.copy())
        time.sleep(0.01)
        return y.argmax(1)[:, None].astype(np.float32)

    batcher = MicroBatcher("m", run, max_batch_size=64)

    async def main() -> list[np.ndarray]:
        calls = [batcher.run(np.zeros((1, 3), np.float32), np.eye(10, dtype=np.float32)[[k]])
                 for k in range(10)]  # fmt: skip
        return await asyncio.gather(*calls)

    outs = asyncio.run(main())
    assert [int(o[0, 0]) for o in outs] == list(range(10))
    assert len(seen) < 10  # merged: fewer session runs than calls


def test_the_next_batch_starts_while_the_event_loop_is_busy() -> None:
    """Batches must not wait for the loop: under load it is busy encoding and sending."""
    run = SlowDouble(0.05)
    batcher = MicroBatcher("m", run, max_batch_size=16)

    async def main() -> float:
        first = asyncio.ensure_future(batcher.run(np.zeros((1, 2), np.float32), None))
        await asyncio.sleep(0.01)  # the first batch is running
        second = asyncio.ensure_future(batcher.run(np.ones((1, 2), np.float32), None))
        await asyncio.sleep(0)  # the second request is queued
        time.sleep(0.2)  # the loop is busy (HTTP work) long after the first batch ends
        loop_free_at = time.perf_counter()
        out = await asyncio.gather(first, second)
        np.testing.assert_array_equal(out[1], np.full((1, 2), 2.0))
        return loop_free_at

    loop_free_at = asyncio.run(main())
    assert len(run.runs) == 2
    assert run.runs[1][0] < loop_free_at, "the second batch waited for the event loop"


def test_batches_in_flight_run_side_by_side_and_keep_rows_apart() -> None:
    run = SlowDouble(0.1)
    batcher = MicroBatcher("m", run, max_batch_size=1, batches_in_flight=2)

    async def main() -> list[np.ndarray]:
        inputs = [np.full((1, 3), k + 1, np.float32) for k in range(4)]
        outs = await asyncio.gather(*(batcher.run(z, None) for z in inputs))
        for z, out in zip(inputs, outs, strict=True):
            np.testing.assert_array_equal(out, z * 2)
        return outs

    asyncio.run(main())
    first, second = sorted(run.runs)[:2]
    assert second[0] < first[1], "two batches in flight should overlap in time"
    assert run.batches == [1, 1, 1, 1]  # max_batch_size still holds


def test_a_cancelled_caller_does_not_break_the_batch_for_the_others() -> None:
    run = SlowDouble(0.05)
    batcher = MicroBatcher("m", run, max_batch_size=8)

    async def main() -> None:
        calls = [asyncio.ensure_future(batcher.run(np.full((1, 2), k + 1, np.float32), None))
                 for k in range(3)]  # fmt: skip
        await asyncio.sleep(0.01)
        calls[1].cancel()  # a client hung up while its batch ran
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        np.testing.assert_array_equal(results[0], np.full((1, 2), 2.0))
        np.testing.assert_array_equal(results[2], np.full((1, 2), 6.0))

    asyncio.run(main())
