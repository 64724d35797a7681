"""Overload: hostile clients against `bentoml serve`, both batching paths, loopback only.

    python -m bench.overload [--short] [--paths inprocess adaptive] [--out overload.md]

Each of `--connections` (500) clients loops POST /generate {"n": 64} on its own connection
for `--seconds` (30), ignoring Retry-After, as the original probe did; /readyz is probed
every 0.5 s with the Deployment's 3 s timeout, on GAN_PROBE_PORT (answered off the event
loop, service/probes.py) and, for comparison, on the API port. Then the clients drop their
connections mid-request, and the run measures how long until a lone request is answered within the
latency target again (recovery), and the server's RSS a minute later. Reported per path:
answers by status, p50/p99 of admitted (200) requests, the slowest /readyz, RSS before /
peak / after, recovery time, `gan_rejected_requests_total` by reason, log volume and
tracebacks. `--short` (64 clients, 10 s, 20 s settle) is the CI-sized check.

Targets (README "Overload"): admitted p99 within 2x the latency target, RSS back within
10 % of its pre-overload level a minute after, recovery under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import psutil

from harness import MODELS_DIR
from harness.live_server import LiveServer, free_port
from service.settings import Limits

BODY = {"n": 64}
PROBE_TIMEOUT_S = 3.0
MIB = 1024 * 1024


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
    return total


def rejected_by_reason(metrics: str) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for reason, value in re.findall(
        r'^gan_rejected_requests_total\{[^}]*reason="([a-z_]+)"[^}]*\} ([0-9.e+]+)$',
        metrics,
        re.MULTILINE,
    ):
        totals[reason] += float(value)
    return dict(totals)


def check_loopback(url: str) -> None:
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"loopback only: refusing to load {url}")


@dataclass
class Overload:
    path: str
    connections: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    admitted_ms: list[float] = field(default_factory=list)
    readyz_ms: list[float] = field(default_factory=list)  # on the API port, the loop's
    readyz_failures: int = 0
    probe_ms: list[float] = field(default_factory=list)  # on GAN_PROBE_PORT, off the loop
    probe_failures: int = 0
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    settle_s: float = 0.0
    recovery_s: float | None = None
    rejected: dict[str, float] = field(default_factory=dict)
    log_bytes: int = 0
    tracebacks: int = 0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.admitted_ms, q)) if self.admitted_ms else float("nan")


async def _client(http: aiohttp.ClientSession, url: str, stop: float, result: Overload) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            async with http.post(f"{url}/generate", json=BODY) as r:
                await r.read()
                result.statuses[r.status] += 1
                if r.status == 200:
                    result.admitted_ms.append((time.monotonic() - started) * 1000)
        except (aiohttp.ClientError, TimeoutError) as exc:
            result.statuses[type(exc).__name__] += 1


async def _probe_readyz(url: str, stop: float, times: list[float]) -> int:
    """GET url/readyz every 0.5 s with the kubelet's timeout; returns the failures."""
    failures = 0
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                async with http.get(f"{url}/readyz") as r:
                    await r.read()
                    failures += r.status != 200
            except (aiohttp.ClientError, TimeoutError):
                failures += 1
            times.append((time.monotonic() - started) * 1000)
            await asyncio.sleep(0.5)
    return failures


async def _sample_rss(pid: int, stop: float, result: Overload) -> None:
    while time.monotonic() < stop:
        result.rss_peak = max(result.rss_peak, tree_rss(pid))
        await asyncio.sleep(0.5)


async def _recover(url: str, target_ms: float) -> float:
    """Seconds from now until a lone request is answered 200 within the latency target."""
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() - started < 60:
            sent = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.post(f"{url}/generate", json={"n": 1}) as r:
                    await r.read()
                    if r.status == 200 and (time.monotonic() - sent) * 1000 <= target_ms:
                        return time.monotonic() - started
            await asyncio.sleep(0.05)
    return float("inf")


async def _drive(
    url: str, probe_url: str, pid: int, connections: int, seconds: float, result: Overload
) -> None:
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        clients = [
            asyncio.create_task(_client(http, url, stop, result)) for _ in range(connections)
        ]
        loop_probe = asyncio.create_task(_probe_readyz(url, stop, result.readyz_ms))
        port_probe = asyncio.create_task(_probe_readyz(probe_url, stop, result.probe_ms))
        rss = asyncio.create_task(_sample_rss(pid, stop, result))
        await asyncio.sleep(seconds)
        for task in clients:  # walk away mid-request, as impatient clients do
            task.cancel()
        await asyncio.gather(*clients, rss, return_exceptions=True)
        result.readyz_failures = await loop_probe
        result.probe_failures = await port_probe


async def _warm(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            async with http.post(f"{url}/generate", json=BODY) as r:
                await r.read()


def run_path(path: str, connections: int, seconds: float, settle_s: float) -> Overload:
    result = Overload(path, connections, seconds, settle_s=settle_s)
    target_ms = Limits.from_env().latency_target_ms
    probe_port = free_port()
    env = {"GAN_BATCHING": path, "GAN_PROBE_PORT": str(probe_port)}
    with LiveServer(models_dir=MODELS_DIR, env=env, ready_timeout=180) as live:
        check_loopback(live.url)
        probe_url = f"http://127.0.0.1:{probe_port}"
        asyncio.run(_warm(live.url))
        time.sleep(2)
        result.rss_before = tree_rss(live.pid)
        log_start = len(live.output())
        asyncio.run(_drive(live.url, probe_url, live.pid, connections, seconds, result))
        result.recovery_s = asyncio.run(_recover(live.url, target_ms))
        time.sleep(settle_s)
        result.rss_after = tree_rss(live.pid)
        log = live.output()[log_start:]
        result.log_bytes = len(log.encode())
        result.tracebacks = log.count("Traceback")
        import requests

        result.rejected = rejected_by_reason(requests.get(f"{live.url}/metrics", timeout=10).text)
    return result


def table(results: list[Overload], target_ms: int) -> str:
    statuses = sorted({str(s) for r in results for s in r.statuses})
    lines = [
        "| path | clients × s | "
        + " | ".join(f"{s}" for s in statuses)
        + " | admitted p50 / p99 ms | slowest /readyz ms: probe port, API port "
        "| RSS before / peak / after MiB "
        "| recovery s | shed by reason | log KiB | tracebacks |",
        "|---|---|" + "---|" * len(statuses) + "---|---|---|---|---|---|---|",
    ]
    for r in results:
        counts = " | ".join(
            f"{r.statuses.get(int(s) if s.isdigit() else s, 0):,}" for s in statuses
        )
        reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r.rejected.items())) or "-"
        readyz = (
            f"{slowest(r.probe_ms, r.probe_failures)}, {slowest(r.readyz_ms, r.readyz_failures)}"
        )
        lines.append(
            f"| {r.path} | {r.connections} × {r.seconds:.0f} | {counts} | "
            f"{r.pct(50):,.0f} / {r.pct(99):,.0f} | {readyz} | "
            f"{r.rss_before / MIB:,.0f} / {r.rss_peak / MIB:,.0f} / {r.rss_after / MIB:,.0f} | "
            f"{r.recovery_s:.2f} | {reasons} | {r.log_bytes / 1024:,.0f} | {r.tracebacks} |"
        )
    lines += ["", "| target | " + " | ".join(r.path for r in results) + " |"]
    lines.append("|---|" + "---|" * len(results))
    goals = [
        (
            f"admitted p99 ≤ 2 × {target_ms} ms",
            lambda r: (r.pct(99) <= 2 * target_ms, f"{r.pct(99):,.0f} ms"),
        ),
        (
            f"RSS {r_settle(results)} s after within 10 % of before",
            lambda r: (
                abs(r.rss_after - r.rss_before) <= 0.1 * r.rss_before,
                f"{(r.rss_after / r.rss_before - 1) * 100:+.1f} %",
            ),
        ),
        (
            "recovery < 2 s",
            lambda r: ((r.recovery_s or 99) < 2, f"{r.recovery_s:.2f} s"),
        ),
        (
            "/readyz (probe port) within 3 s",
            lambda r: (
                r.probe_failures == 0 and bool(r.probe_ms),
                f"{max(r.probe_ms or [0]):.0f} ms, {len(r.probe_ms)} probes",
            ),
        ),
    ]
    for name, check in goals:
        cells = []
        for r in results:
            met, value = check(r)
            cells.append(f"{value} {'met' if met else 'NOT met'}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def slowest(times: list[float], failures: int) -> str:
    text = f"{max(times):.0f}" if times else "-"
    return text + (f" ({failures} of {len(times)} failed)" if failures else "")


def r_settle(results: list[Overload]) -> str:
    return f"{results[0].settle_s:.0f}" if results else "60"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", nargs="+", default=["inprocess", "adaptive"])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds before RSS 'after'")
    parser.add_argument("--short", action="store_true", help="64 clients, 10 s, 20 s settle")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = parser.parse_args()
    if args.short:
        args.connections, args.seconds, args.settle = 64, 10.0, 20.0
    results = []
    for path in args.paths:
        print(f"overload: {path}, {args.connections} clients × {args.seconds:.0f} s ...")
        results.append(run_path(path, args.connections, args.seconds, args.settle))
    text = table(results, Limits.from_env().latency_target_ms)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
