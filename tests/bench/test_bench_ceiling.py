"""bench.ceiling's CPU bound: what naive's work would reach on BentoML's stack, batched."""

from __future__ import annotations

import math

from bench.ceiling import ceiling_bound, naive_seconds_per_image
from bench.inference import InferencePoint
from bench.loadgen import LoadPoint

# One caller of a session: batch size -> images/s (batching gains 2x at 32, then nothing).
RAW = {1: 100.0, 8: 150.0, 32: 200.0, 64: 190.0}
NAIVE_CPU_MS, BARE_CPU_MS, BENTO_CPU_MS, NAIVE_IMAGES_PER_S = 12.0, 0.5, 1.5, 150.0


def point(server: str, mix: str, clients: int, cpu_ms: float, per_request: float) -> LoadPoint:
    return LoadPoint(
        server=server,
        mix=mix,
        clients=clients,
        seconds=1.0,
        requests=100,
        images=round(100 * per_request),
        errors=0,
        req_per_s=100.0,
        images_per_s=NAIVE_IMAGES_PER_S,
        p50_ms=1.0,
        p95_ms=1.0,
        p99_ms=1.0,
        server_cpu_ms=cpu_ms,
        connections=[clients, 0],  # two processes
    )


def bound(clients: int, mix: str = "single", per_request: float = 1) -> float | None:
    load = [
        point("naive", mix, clients, NAIVE_CPU_MS * per_request, per_request),
        point("bare", mix, clients, BARE_CPU_MS, per_request),
        point("bare-bento", mix, clients, BENTO_CPU_MS, per_request),
    ]
    raw = [InferencePoint("m", "cpu", b, 1, 10, r, 1.0, 1.0) for b, r in RAW.items()]
    return ceiling_bound(load, mix, clients, raw, "m", "cpu")


def expected(saving_ms: float, per_request: float = 1) -> float:
    """Naive's images/s with its work moved onto BentoML's stack, minus the saving."""
    naive = NAIVE_CPU_MS * per_request
    on_bento = naive - BARE_CPU_MS + BENTO_CPU_MS  # naive's work + 1 ms
    return NAIVE_IMAGES_PER_S * naive / (on_bento - saving_ms)


def test_the_batching_saving_stops_at_the_images_in_flight_per_worker() -> None:
    # 1 client: nothing to batch; BentoML's extra 1 ms per request is the whole difference.
    assert math.isclose(bound(1), expected(0.0))
    # 8 clients over 2 processes: 4 images in flight, rounded up to the measured batch 8.
    assert math.isclose(bound(8), expected(1e3 * (1 / 100 - 1 / 150)))
    # 64 clients: 32 in flight each, ORT's best batch (32) reached.
    assert math.isclose(bound(64), expected(1e3 * (1 / 100 - 1 / 200)))
    # More in flight than any measured batch: still the best one, never more.
    assert math.isclose(bound(1000), bound(64))


def test_naive_pays_each_request_size_at_its_own_batch() -> None:
    # Requests of 1, 2 and 3 images at 100, 125 (on the line from 100 to 150) and 150
    # images/s: 10 + 16 + 20 ms for 6 images.
    assert math.isclose(naive_seconds_per_image({1: 100.0, 3: 150.0}, 1, 3), 0.046 / 6)
    # Sizes past the largest measured batch run at its rate.
    assert math.isclose(naive_seconds_per_image({1: 100.0, 3: 150.0}, 4, 4), 1 / 150)
    assert math.isclose(naive_seconds_per_image(RAW, 1, 1), 1 / 100)


def test_a_multi_image_request_is_already_a_batch_for_naive() -> None:
    # 1 client: one request in flight per process, run as one batch, as naive does.
    assert math.isclose(bound(1, "1-16", 8.5), expected(0.0, per_request=8.5))
    # 64 clients: batches up to ORT's best (32 images) against naive's one per request.
    saving_ms = 8.5e3 * (naive_seconds_per_image(RAW, 1, 16) - 1 / 200)
    assert saving_ms > 0
    assert math.isclose(bound(64, "1-16", 8.5), expected(saving_ms, per_request=8.5))
