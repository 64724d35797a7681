"""MicroBatcher: merges concurrent calls, keeps each caller's rows, bounds batch size."""

import asyncio
import time

import numpy as np

from service.batcher import MicroBatcher


class SlowDouble:
    """A stand-in for an ONNX session call that records the batch sizes it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail

    def __call__(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        self.batches.append(len(z))
        time.sleep(0.02)  # long enough for the other callers to queue behind it
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
