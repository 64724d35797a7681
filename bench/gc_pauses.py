"""Garbage-collection pauses in the service's workers, with Python's GC settings and ours.

    python -m bench.gc_pauses [--clients 64] [--seconds 20] [--model fashion-cgan-standin]
                              [--settings K=V[,K=V] ...]

Starts `bentoml serve` once per `--settings` entry (`K=V`, several joined by `,`), by default
with Python's own GC settings (nothing frozen, the young generation collected every 700
allocations), with the start-up heap frozen, and with the project defaults (frozen, every
7,000: service/heap.py); drives single-image requests from `--clients` closed-loop clients,
and reads the workers' `gan_gc_pause_seconds` histogram before and after the window. Prints,
per generation: collections and pause time per 1,000 requests, the mean pause and the
bucket the longest pause fell in. A full (generation 2) collection stops a worker's event
loop, so its pause lands on every request in flight there. The stand-in model (default,
bench/standin.py) makes requests cheap, as on a GPU, so collections come often.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen, servers, standin
from bench.loadgen import LoadPoint

METRIC = "gan_gc_pause_seconds"
STANDIN = "-standin"  # bench/standin.py names its model `<shipped model>-standin`
GENERATIONS = (0, 1, 2)
DEFAULT_SETTINGS = [
    "GAN_GC_FREEZE=off,GAN_GC_YOUNG_THRESHOLD=700",
    "GAN_GC_FREEZE=on,GAN_GC_YOUNG_THRESHOLD=700",
    "GAN_GC_FREEZE=on,GAN_GC_YOUNG_THRESHOLD=7000",
]


@dataclass
class Pauses:
    count: float
    seconds: float
    buckets: dict[float, float]  # cumulative: upper bound -> collections at or below it


def pauses(metrics_text: str) -> dict[int, Pauses]:
    """Per generation, summed over the workers' series."""
    out = {g: Pauses(0.0, 0.0, {}) for g in GENERATIONS}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            g = int(sample.labels.get("generation", "-1"))
            if g not in out:
                continue
            if sample.name.endswith("_count"):
                out[g].count += sample.value
            elif sample.name.endswith("_sum"):
                out[g].seconds += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                out[g].buckets[bound] = out[g].buckets.get(bound, 0.0) + sample.value
    return out


def longest_bucket(before: Pauses, after: Pauses) -> float | None:
    """Upper bound of the bucket the longest pause in the window fell in."""
    window = {b: after.buckets[b] - before.buckets.get(b, 0.0) for b in after.buckets}
    total = window.get(math.inf, 0.0)
    if total <= 0:
        return None
    return min(b for b, n in window.items() if n >= total)


@dataclass
class Row:
    settings: str
    point: LoadPoint
    window: dict[int, tuple[float, float, float | None]]  # count, seconds, longest bucket


def run_one(
    server: servers.Server, settings: str, clients: int, seconds: float, model: str, env: dict
) -> Row:
    extra = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    with server.start({**env, **extra}) as srv:
        asyncio.run(loadgen.measure(srv.url, "warm-up", clients, 2.0, "single", model))
        before = pauses(asyncio.run(loadgen.scrape_metrics(srv.url)))
        point = asyncio.run(
            loadgen.measure(srv.url, settings, clients, seconds, "single", model, warmup_s=0)
        )
        # The workers move pauses into the histogram once a second (service/heap.py).
        time.sleep(1.5)
        after = pauses(asyncio.run(loadgen.scrape_metrics(srv.url)))
    window = {
        g: (
            after[g].count - before[g].count,
            after[g].seconds - before[g].seconds,
            longest_bucket(before[g], after[g]),
        )
        for g in GENERATIONS
    }
    return Row(settings, point, window)


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| settings | req/s | p99 ms | generation | collections per 1,000 req "
        "| pause ms per 1,000 req | mean pause ms | longest pause ≤ ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_k = 1000 / max(1, row.point.requests)
        for g in GENERATIONS:
            count, secs, longest = row.window[g]
            mean = f"{secs / count * 1e3:.2f}" if count else "–"
            top = f"{longest * 1e3:g}" if longest not in (None, math.inf) else "–"
            if longest == math.inf:
                top = "> 250"
            lines.append(
                f"| {row.settings} | {row.point.req_per_s:,.0f} | {row.point.p99_ms:.1f} | {g} "
                f"| {count * per_k:.1f} | {secs * 1e3 * per_k:.1f} | {mean} | {top} |"
            )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--model", default="fashion-cgan-standin", help="or a shipped model")
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    args = p.parse_args()
    service = next(s for s in servers.all_servers() if s.name == "service")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
        env = {}
        if args.model.endswith(STANDIN):
            standin.build(Path(tmp), args.model.removesuffix(STANDIN))
            env["GAN_MODELS_DIR"] = tmp
        for settings in args.settings:
            rows.append(run_one(service, settings, args.clients, args.seconds, args.model, env))
            print(loadgen.fmt_point(rows[-1].point), flush=True)
    print()
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
