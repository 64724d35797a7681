"""MicroBatcher: merges concurrent calls, keeps each caller's rows, bounds batch size.

No wall-clock thresholds: the stand-in session runs a batch only when the test releases
it, and the tests wait on its events (each wait bounded by a deadline).
"""

import asyncio
import threading
import time

import numpy as np

from service.batching.microbatcher import MicroBatcher

DEADLINE_S = 10.0  # bounds every wait; a correct batcher needs a tiny fraction of it


class GatedDouble:
    """A stand-in for an ONNX session call (on the batcher's threads, as ORT runs): each run
    logs its batch size, announces that it started, waits until the test releases it, then
    doubles its input. `open()` lets every run through."""

    def __init__(self, fail: bool = False, gated: bool = True) -> None:
        self.fail = fail
        self.batches: list[int] = []  # images per run, in start order
        self.running = 0
        self.most_running = 0  # the most runs in progress at one time
        self._lock = threading.Lock()
        self._started = threading.Semaphore(0)
        self._permits = threading.Semaphore(0)
        self._open = threading.Event()
        if not gated:
            self._open.set()

    def __call__(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        with self._lock:
            self.batches.append(len(z))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self._started.release()
        try:
            if not self._open.is_set() and not self._permits.acquire(timeout=DEADLINE_S):
                raise TimeoutError("the test never released this run")
            if self.fail:
                raise RuntimeError("session failed")
            return z * 2
        finally:
            with self._lock:
                self.running -= 1

    def wait_started(self, runs: int = 1) -> None:
        """Block until `runs` more runs have started (they stay held until released)."""
        for _ in range(runs):
            assert self._started.acquire(timeout=DEADLINE_S), "no batch started"

    def release(self, runs: int = 1) -> None:
        for _ in range(runs):
            self._permits.release()

    def open(self) -> None:
        self._open.set()
        self.release(1000)  # the runs already waiting


async def queued() -> None:
    """Let the event loop run the calls submitted so far up to their wait in the batcher
    (a task reaches it in one step; a few passes leave room for a deeper call chain)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_concurrent_calls_share_batches_and_get_their_own_rows() -> None:
    run = GatedDouble()
    batcher = MicroBatcher("m", run, max_batch_size=16)

    async def main() -> None:
        inputs = [np.full((k % 3 + 1, 4), k, np.float32) for k in range(20)]
        calls = [asyncio.ensure_future(batcher.run(z, None)) for z in inputs]
        await asyncio.to_thread(run.wait_started)  # a batch is running, held by the test
        await queued()  # every other call queues behind it
        run.open()
        outs = await asyncio.gather(*calls)
        for z, out in zip(inputs, outs, strict=True):
            np.testing.assert_array_equal(out, z * 2)

    asyncio.run(main())
    assert sum(run.batches) == sum(k % 3 + 1 for k in range(20))
    assert max(run.batches) <= 16
    assert len(run.batches) < 20, run.batches  # the calls queued meanwhile were merged


def test_a_failed_batch_fails_its_callers_and_the_batcher_recovers() -> None:
    run = GatedDouble(fail=True, gated=False)
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
    seen: list[np.ndarray] = []
    gate = GatedDouble()

    def run(z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        assert y is not None
        seen.append(y.copy())
        gate(z, y)  # held like a session call
        return y.argmax(1)[:, None].astype(np.float32)

    batcher = MicroBatcher("m", run, max_batch_size=64)

    async def main() -> list[np.ndarray]:
        calls = [asyncio.ensure_future(batcher.run(np.zeros((1, 3), np.float32),
                                                   np.eye(10, dtype=np.float32)[[k]]))
                 for k in range(10)]  # fmt: skip
        await asyncio.to_thread(gate.wait_started)
        await queued()
        gate.open()
        return await asyncio.gather(*calls)

    outs = asyncio.run(main())
    assert [int(o[0, 0]) for o in outs] == list(range(10))
    assert len(seen) < 10  # merged: fewer session runs than calls


def test_the_next_batch_starts_while_the_event_loop_is_busy() -> None:
    """Batches must not wait for the loop: under load it is busy encoding and sending."""
    run = GatedDouble()
    batcher = MicroBatcher("m", run, max_batch_size=16)

    async def main() -> list[np.ndarray]:
        first = asyncio.ensure_future(batcher.run(np.zeros((1, 2), np.float32), None))
        await asyncio.to_thread(run.wait_started)  # the first batch is running
        second = asyncio.ensure_future(batcher.run(np.ones((1, 2), np.float32), None))
        await queued()  # the second request is queued
        # From here the loop is blocked (as by HTTP work) until the second batch starts.
        run.release()  # the first batch ends; its results wait for the loop
        run.wait_started()  # fails after the deadline if the next batch waits for the loop
        run.open()
        return await asyncio.gather(first, second)

    out = asyncio.run(main())
    np.testing.assert_array_equal(out[1], np.full((1, 2), 2.0))
    assert run.batches == [1, 1]


def test_batches_in_flight_run_side_by_side_and_keep_rows_apart() -> None:
    run = GatedDouble()
    batcher = MicroBatcher("m", run, max_batch_size=1, batches_in_flight=2)

    async def main() -> None:
        inputs = [np.full((1, 3), k + 1, np.float32) for k in range(4)]
        calls = [asyncio.ensure_future(batcher.run(z, None)) for z in inputs]
        # Two batches start and are both held: they are in flight at the same time.
        await asyncio.to_thread(run.wait_started, 2)
        run.open()
        outs = await asyncio.gather(*calls)
        for z, out in zip(inputs, outs, strict=True):
            np.testing.assert_array_equal(out, z * 2)

    asyncio.run(main())
    assert run.most_running == 2
    assert run.batches == [1, 1, 1, 1]  # max_batch_size still holds


def test_a_cancelled_caller_does_not_break_the_batch_for_the_others() -> None:
    run = GatedDouble()
    batcher = MicroBatcher("m", run, max_batch_size=8)

    async def main() -> None:
        calls = [asyncio.ensure_future(batcher.run(np.full((1, 2), k + 1, np.float32), None))
                 for k in range(3)]  # fmt: skip
        await asyncio.to_thread(run.wait_started)  # a batch is running
        calls[1].cancel()  # a client hung up meanwhile
        run.open()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        np.testing.assert_array_equal(results[0], np.full((1, 2), 2.0))
        np.testing.assert_array_equal(results[2], np.full((1, 2), 6.0))

    asyncio.run(main())


def test_idle_threads_share_the_queue_instead_of_one_taking_it_all() -> None:
    run = GatedDouble(gated=False)
    batcher = MicroBatcher("m", run, max_batch_size=64, batches_in_flight=2)

    async def main() -> None:
        await batcher.run(np.zeros((1, 2), np.float32), None)  # both threads start
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while batcher._idle < 2:  # ... and wait for work
            assert asyncio.get_running_loop().time() < deadline, "threads never went idle"
            await asyncio.sleep(0.01)
        run.batches.clear()
        # Queue 8 calls while the threads cannot look (the batcher's lock is re-entrant).
        with batcher._ready:
            calls = [
                asyncio.ensure_future(batcher.run(np.full((1, 2), k, np.float32), None))
                for k in range(8)
            ]
            await queued()
        outs = await asyncio.gather(*calls)
        for k, out in enumerate(outs):
            np.testing.assert_array_equal(out, np.full((1, 2), 2.0 * k))

    asyncio.run(main())
    # The first thread took its half, not all 8; the rest went to the other thread.
    assert run.batches[0] == 4 and sum(run.batches) == 8, run.batches


def test_cheap_calls_run_on_the_event_loop_when_nothing_is_queued() -> None:
    threads: list[str] = []

    def run(z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return z * 2

    batcher = MicroBatcher("m", run, max_batch_size=8, inline_max_s=10.0)
    unmeasured = MicroBatcher("m", run, max_batch_size=8)  # inline off (0)

    async def main() -> None:
        for b in (batcher, batcher, unmeasured, unmeasured):
            out = await b.run(np.ones((2, 2), np.float32), None)
            np.testing.assert_array_equal(out, np.full((2, 2), 2.0))

    asyncio.run(main())
    # The first call measures the cost on a thread; the second runs inline on the loop.
    main_thread = threading.main_thread().name
    assert threads[0] != main_thread and threads[1] == main_thread
    assert main_thread not in threads[2:]


def test_a_lone_request_runs_on_the_loop_and_concurrent_ones_batch_on_threads() -> None:
    calls: list[tuple[str, int]] = []

    def run(z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        calls.append((threading.current_thread().name, len(z)))
        return z * 2

    # Nothing counts as cheap (1 ns), so only the lone-request rule can put a call inline.
    batcher = MicroBatcher("m", run, max_batch_size=8, inline_max_s=1e-9)

    async def main() -> None:
        one = np.ones((1, 2), np.float32)
        await batcher.run(one, None)  # measures the cost, on a thread
        await batcher.run(one, None)  # alone: on the loop
        together = await asyncio.gather(*(batcher.run(one * k, None) for k in range(3)))
        for k, out in enumerate(together):
            np.testing.assert_array_equal(out, one * k * 2)

    asyncio.run(main())
    main_thread = threading.main_thread().name
    assert calls[0][0] != main_thread and calls[1][0] == main_thread
    # Three requests read in the same turn of the loop: none inline, merged into one batch.
    assert all(name != main_thread for name, _ in calls[2:]), calls
    assert [n for _, n in calls[2:]] == [3], calls


def test_a_lone_request_too_long_for_the_loop_still_goes_to_a_thread() -> None:
    from service.batching.microbatcher import LONE_INLINE_MAX_S

    threads: list[str] = []

    def run(z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        threads.append(threading.current_thread().name)
        start = time.thread_time()
        while time.thread_time() - start < LONE_INLINE_MAX_S * 1.5:  # CPU, as ORT spends it
            pass
        return z

    batcher = MicroBatcher("m", run, max_batch_size=8, inline_max_s=1e-9)

    async def main() -> None:
        for _ in range(2):
            await batcher.run(np.ones((1, 2), np.float32), None)

    asyncio.run(main())
    assert threading.main_thread().name not in threads


def test_tickets_withdraw_late_requests_and_drop_abandoned_ones_unrun() -> None:
    from service.batching.admission import NotStarted, Ticket

    run = GatedDouble()
    batcher = MicroBatcher("m", run, max_batch_size=8)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(batcher.run(np.ones((1, 2), np.float32), None))
        await asyncio.to_thread(run.wait_started)  # held: nothing else can start
        late = Ticket(deadline=loop.time() + 0.05, gone=None)
        gone = asyncio.Event()
        left = Ticket(deadline=loop.time() + DEADLINE_S, gone=gone)
        kept = Ticket(deadline=loop.time() + DEADLINE_S, gone=asyncio.Event())
        calls = [
            asyncio.ensure_future(batcher.run(np.full((1, 2), k, np.float32), None, t))
            for k, t in ((2, late), (3, left), (4, kept))
        ]
        try:
            await calls[0]
            raise AssertionError("the late request ran")
        except NotStarted as exc:
            assert exc.reason == "deadline"
        gone.set()  # its client disconnects while it waits
        run.open()
        await first
        results = await asyncio.gather(*calls[1:], return_exceptions=True)
        assert isinstance(results[0], NotStarted) and results[0].reason == "client_gone"
        np.testing.assert_array_equal(results[1], np.full((1, 2), 8.0))

    asyncio.run(main())
    assert run.batches == [1, 1]  # the first, then the kept one: nothing ran for the others
