"""bench.gc_pauses reads the GC pause histogram the way prometheus_client writes it."""

from __future__ import annotations

import math

import prometheus_client as prom

from bench.gc_pauses import longest_bucket, pauses
from service.metrics import GC_PAUSE_BUCKETS


def exposition(observations: dict[str, list[float]]) -> str:
    """Two workers' series of `gan_gc_pause_seconds`, as one /metrics page shows them."""
    registry = prom.CollectorRegistry()
    histogram = prom.Histogram(
        "gan_gc_pause_seconds",
        "pauses",
        ["generation", "worker"],
        buckets=GC_PAUSE_BUCKETS,
        registry=registry,
    )
    for generation, values in observations.items():
        for k, value in enumerate(values):
            histogram.labels(generation=generation, worker=str(k % 2)).observe(value)
    return prom.generate_latest(registry).decode()


def test_pauses_sum_the_workers_and_find_the_longest_bucket() -> None:
    before = pauses(exposition({"0": [0.0003], "2": [0.004]}))
    after = pauses(exposition({"0": [0.0003, 0.0004, 0.002], "2": [0.004, 0.12, 0.03]}))
    assert after[0].count == 3 and math.isclose(after[0].seconds, 0.0027)
    assert after[2].count == 3 and math.isclose(after[2].seconds, 0.154)
    assert longest_bucket(before[2], after[2]) == 0.25  # 0.12 s is in the (0.1, 0.25] bucket
    assert longest_bucket(before[0], after[0]) == 0.0025
    assert longest_bucket(after[1], after[1]) is None  # no collection in the window
    beyond = pauses(exposition({"2": [0.004, 0.4]}))
    assert longest_bucket(before[2], beyond[2]) == math.inf
