"""Closed-loop load generator: C concurrent clients POST /generate on loopback, bounded by time
and by request count; reports req/s, images/s, latency percentiles, errors, mean batch size.

    python -m bench.loadgen http://127.0.0.1:3000 --clients 1 8 32 64 128 --seconds 6 \
        [--mix single|1-16] [--model fashion-cgan]

Each client sends its next request as soon as the previous answer is read (closed loop), so
the offered load is exactly C requests in flight. A 503 that carries `Retry-After` makes
that client wait as asked before its next request, as well-behaved HTTP clients do (urllib3's
`Retry` honours the header by default); `--ignore-retry-after` resends at once instead, as a
hostile client would. The mean batch size comes from the server's Prometheus `/metrics`
(delta over the measured window) where it exports one.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

# Histograms of images per ORT call, best first: the service's own, then BentoML's.
BATCH_METRICS = ("gan_batch_images", "bentoml_service_adaptive_batch_size")
MIXES = {"single": (1, 1), "1-16": (1, 16)}
TIMEOUT_S = 60.0
# Upper edges of the latency histogram's buckets (ms); one more bucket holds the rest.
LATENCY_EDGES_MS = (2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


@dataclass
class LoadPoint:
    server: str
    mix: str
    clients: int
    seconds: float
    requests: int
    images: int
    errors: int  # every answer but a 200 with a body, and every failed request
    req_per_s: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float = float("nan")
    max_ms: float = float("nan")
    mean_batch: float | None = None
    server_cpu_ms: float | None = None  # server CPU time per request (all its processes)
    error_samples: list[str] = field(default_factory=list)
    # Requests per latency bucket (upper edges LATENCY_EDGES_MS, the last one open).
    histogram: list[int] = field(default_factory=list)
    # Open client connections held by each server process mid-window, most first.
    connections: list[int] = field(default_factory=list)
    # Of the errors, 503s with Retry-After: load shed on purpose, the client told when to retry.
    shed: int = 0


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    images: int = 0
    errors: int = 0
    shed: int = 0
    sent: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message[:200])


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"loopback only: refusing to load {host!r}")


async def _client(
    http: aiohttp.ClientSession,
    endpoint: str,
    body: dict,
    sizes: tuple[int, int],
    rng: np.random.Generator,
    deadline: float,
    max_requests: int,
    tally: _Tally,
    wrap: str | None,
    honour_retry_after: bool,
) -> None:
    while time.perf_counter() < deadline and tally.sent < max_requests:
        tally.sent += 1
        n = int(rng.integers(sizes[0], sizes[1] + 1))
        payload: dict = {**body, "n": n, "seed": int(rng.integers(0, 2**31))}
        if wrap:  # an API method taking one pydantic argument named `wrap`
            payload = {wrap: payload}
        t0 = time.perf_counter()
        try:
            async with http.post(endpoint, json=payload) as resp:
                data = await resp.read()
                if resp.status != 200 or not data:
                    tally.error(f"HTTP {resp.status}: {data[:160]!r}")
                    wait_s = _retry_after_s(resp)
                    if wait_s > 0:
                        tally.shed += 1
                        if honour_retry_after:
                            await asyncio.sleep(min(wait_s, deadline - time.perf_counter()))
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.error(f"{type(exc).__name__}: {exc}")
            continue
        tally.latencies.append(time.perf_counter() - t0)
        tally.images += n


def _retry_after_s(resp: aiohttp.ClientResponse) -> float:
    """Seconds a 503 asks the client to wait (delay-seconds form only), else 0."""
    if resp.status != 503:
        return 0.0
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else 0.0


async def _drive(
    endpoint: str,
    clients: int,
    seconds: float,
    max_requests: int,
    body: dict,
    sizes: tuple[int, int],
    seed: int,
    wrap: str | None = None,
    honour_retry_after: bool = True,
) -> tuple[_Tally, float]:
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tally = _Tally()
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(
            *[
                _client(
                    http,
                    endpoint,
                    body,
                    sizes,
                    np.random.default_rng(seed + c),
                    deadline,
                    max_requests,
                    tally,
                    wrap,
                    honour_retry_after,
                )
                for c in range(clients)
            ]
        )
        return tally, time.perf_counter() - t0


async def scrape_metrics(url: str) -> str:
    """The server's `/metrics` page, or "" when it has none."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(f"{url}/metrics") as resp,
        ):
            return await resp.text() if resp.status == 200 else ""
    except aiohttp.ClientError:
        return ""


def batch_totals(metrics_text: str, model: str | None = None) -> dict[str, tuple[float, float]]:
    """{histogram name: (sum, count)} for the batch-size histograms, filtered by model label."""
    totals: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in BATCH_METRICS:
            continue
        s = c = 0.0
        for sample in family.samples:
            if model and sample.labels.get("model", model) != model:
                continue
            if sample.name.endswith("_sum"):
                s += sample.value
            elif sample.name.endswith("_count"):
                c += sample.value
        totals[family.name] = (s, c)
    return totals


def mean_batch(before: str, after: str, model: str | None) -> float | None:
    b, a = batch_totals(before, model), batch_totals(after, model)
    for name in BATCH_METRICS:
        if name in a:
            s0, c0 = b.get(name, (0.0, 0.0))
            s1, c1 = a[name]
            if c1 > c0:
                return (s1 - s0) / (c1 - c0)
    return None


async def measure(
    url: str,
    server: str,
    clients: int,
    seconds: float,
    mix: str = "single",
    model: str | None = None,
    label: int | None = None,
    max_requests: int = 200_000,
    warmup_s: float = 1.0,
    wrap: str | None = None,
    cpu_seconds: Callable[[], float] | None = None,
    route: str = "/generate",
    connections: Callable[[], list[int]] | None = None,
    honour_retry_after: bool = True,
) -> LoadPoint:
    """One load point: a short unmeasured warm-up at the same concurrency, then the window."""
    _check_loopback(url)
    endpoint = url + route
    body: dict = {"format": "png"}
    if model:
        body["model"] = model
    if label is not None:
        body["label"] = label
    sizes = MIXES[mix]
    if warmup_s > 0:
        await _drive(
            endpoint, clients, warmup_s, max_requests, body, sizes, 10**6, wrap, honour_retry_after
        )
    before = await scrape_metrics(url)
    cpu0 = cpu_seconds() if cpu_seconds else 0.0
    drive = asyncio.ensure_future(
        _drive(endpoint, clients, seconds, max_requests, body, sizes, 0, wrap, honour_retry_after)
    )
    spread: list[int] = []
    if connections is not None:  # mid-window, every client connected
        await asyncio.sleep(seconds / 2)
        spread = await asyncio.to_thread(connections)
    tally, elapsed = await drive
    cpu1 = cpu_seconds() if cpu_seconds else 0.0
    after = await scrape_metrics(url)
    lat = np.array(tally.latencies) * 1e3 if tally.latencies else np.array([np.nan])
    return LoadPoint(
        server=server,
        mix=mix,
        clients=clients,
        seconds=round(elapsed, 2),
        requests=len(tally.latencies),
        images=tally.images,
        errors=tally.errors,
        req_per_s=len(tally.latencies) / elapsed,
        images_per_s=tally.images / elapsed,
        p50_ms=float(np.percentile(lat, 50)),
        p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)),
        p999_ms=float(np.percentile(lat, 99.9)),
        max_ms=float(np.max(lat)),
        histogram=np.bincount(
            np.searchsorted(LATENCY_EDGES_MS, lat[np.isfinite(lat)]),
            minlength=len(LATENCY_EDGES_MS) + 1,
        ).tolist(),
        connections=spread,
        mean_batch=mean_batch(before, after, model),
        server_cpu_ms=(cpu1 - cpu0) * 1e3 / len(tally.latencies)
        if cpu_seconds and tally.latencies
        else None,
        error_samples=tally.error_samples,
        shed=tally.shed,
    )


def fmt_point(p: LoadPoint) -> str:
    batch = f"{p.mean_batch:6.1f}" if p.mean_batch is not None else "     -"
    cpu = f"{p.server_cpu_ms:5.2f}" if p.server_cpu_ms is not None else "    -"
    return (
        f"  {p.server:<8} {p.mix:<6} c={p.clients:<3}: {p.req_per_s:8.1f} req/s "
        f"{p.images_per_s:8.1f} img/s  p50 {p.p50_ms:7.1f}  p95 {p.p95_ms:7.1f}  "
        f"p99 {p.p99_ms:7.1f} ms  err {p.errors}  batch {batch}  cpu/req {cpu} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url", help="e.g. http://127.0.0.1:3000 (loopback only)")
    p.add_argument("--server", default="service", help="name for the report")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--mix", choices=sorted(MIXES), default="single")
    p.add_argument("--model", default=None)
    p.add_argument("--label", type=int, default=None)
    p.add_argument("--wrap", default=None, help="nest the body under this key")
    p.add_argument(
        "--ignore-retry-after",
        action="store_true",
        help="resend at once after a 503 instead of waiting its Retry-After",
    )
    args = p.parse_args()
    for c in args.clients:
        point = asyncio.run(
            measure(
                args.url,
                args.server,
                c,
                args.seconds,
                args.mix,
                args.model,
                args.label,
                args.max_requests,
                wrap=args.wrap,
                honour_retry_after=not args.ignore_retry_after,
            )
        )
        print(fmt_point(point), flush=True)
        if point.error_samples:
            print("    errors:", point.error_samples)


if __name__ == "__main__":
    main()
