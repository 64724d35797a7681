"""Soak: steady, sustainable load on `bentoml serve` for minutes; memory must stay flat.

    python -m bench.soak [--minutes 10] [--clients 8] [--path inprocess] [--out soak.md]
    python -m bench.soak --short      # 2 minutes, CI-sized

`--clients` closed-loop clients send a mix shaped like real traffic: /generate with 1-16
images (mostly PNG, some JPEG/WebP), /samples, /interpolate (PNG strips and GIFs), labels
and explicit latents, from both shipped models. Every minute the table gets the server's
RSS (all its processes), requests, p50/p99 latency and errors (anything but 200). The first
minute is warm-up; the target is RSS growth under 2 % from the end of minute 1 to the end
of the run, with 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import requests

from bench.overload import MIB, check_loopback, rejected_by_reason, tree_rss
from harness import MODELS_DIR
from harness.live_server import LiveServer
from service.registry import load_registry

WARMUP_MINUTES = 1
GROWTH_TARGET = 0.02


@dataclass
class Minute:
    index: int
    rss: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def request_mix(rng: random.Random, cards: dict) -> tuple[str, dict]:
    """One request: route and body, drawn from a fixed mix."""
    name = rng.choice(sorted(cards))
    card = cards[name]
    label = rng.randrange(card.num_classes) if card.conditional else None
    roll = rng.random()
    if roll < 0.6:
        body = {"model": name, "n": rng.randint(1, 16), "seed": rng.randrange(2**31)}
        body["format"] = rng.choice(["png", "png", "png", "jpeg", "webp"])
        if label is not None and rng.random() < 0.5:
            body["label"] = label
        return "/generate", body
    if roll < 0.75:
        z = [[rng.gauss(0, 1) for _ in range(card.latent_dim)] for _ in range(rng.randint(1, 4))]
        return "/samples", {"model": name, "z": z, **({"label": label} if label else {})}
    ends = {"start": {"seed": rng.randrange(2**31)}, "end": {"seed": rng.randrange(2**31)}}
    if card.conditional:
        ends["start"]["label"] = label or 0
    fmt = rng.choice(["png", "gif"])
    return "/interpolate", {"model": name, **ends, "steps": rng.randint(2, 12), "format": fmt}


async def _client(
    http: aiohttp.ClientSession, url: str, seed: int, start: float, minutes: list[Minute]
) -> None:
    rng = random.Random(seed)
    cards = {e.card.name: e.card for e in load_registry(MODELS_DIR).values()}
    end = start + 60 * len(minutes)
    while (now := time.monotonic()) < end:
        minute = minutes[min(int((now - start) // 60), len(minutes) - 1)]
        route, body = request_mix(rng, cards)
        try:
            async with http.post(f"{url}{route}", json=body) as r:
                await r.read()
                if r.status == 200:
                    minute.latencies_ms.append((time.monotonic() - now) * 1000)
                else:
                    minute.errors += 1
                    if len(minute.error_samples) < 3:
                        minute.error_samples.append(f"{route} {r.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            minute.errors += 1
            if len(minute.error_samples) < 3:
                minute.error_samples.append(f"{route} {type(exc).__name__}")


async def _sample(pid: int, start: float, minutes: list[Minute]) -> None:
    for minute in minutes:
        await asyncio.sleep(max(0.0, start + 60 * (minute.index + 1) - time.monotonic()))
        minute.rss = tree_rss(pid)


async def _drive(url: str, pid: int, clients: int, minutes: list[Minute]) -> None:
    start = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as http:
        await asyncio.gather(
            _sample(pid, start, minutes),
            *(_client(http, url, k, start, minutes) for k in range(clients)),
        )


def soak(path: str, minutes: int, clients: int) -> tuple[list[Minute], int, dict[str, float]]:
    rows = [Minute(i) for i in range(minutes)]
    with LiveServer(models_dir=MODELS_DIR, env={"GAN_BATCHING": path}, ready_timeout=180) as live:
        check_loopback(live.url)
        before = tree_rss(live.pid)
        asyncio.run(_drive(live.url, live.pid, clients, rows))
        metrics = requests.get(f"{live.url}/metrics", timeout=10).text
    return rows, before, rejected_by_reason(metrics)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def table(
    path: str, clients: int, rows: list[Minute], before: int, rejected: dict[str, float]
) -> str:
    lines = [
        f"Path `{path}`, {clients} clients; RSS before load {before / MIB:,.0f} MiB.",
        "",
        "| minute | RSS MiB | requests | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for m in rows:
        errors = f"{m.errors}" + (f" ({', '.join(m.error_samples)})" if m.errors else "")
        lines.append(
            f"| {m.index + 1} | {m.rss / MIB:,.1f} | {len(m.latencies_ms):,} | "
            f"{m.pct(50):,.1f} | {m.pct(99):,.1f} | {errors} |"
        )
    if len(rows) > WARMUP_MINUTES:
        base, last = rows[WARMUP_MINUTES - 1].rss, rows[-1].rss
        growth = (last - base) / base
        errors = sum(m.errors for m in rows)
        lines += [
            "",
            "| target | measured | |",
            "|---|---|---|",
            f"| RSS growth after warm-up < {GROWTH_TARGET:.0%} | {growth * 100:+.2f} % "
            f"(min {WARMUP_MINUTES} → {len(rows)}) | {verdict(growth < GROWTH_TARGET)} |",
            f"| 0 errors | {errors} | {verdict(errors == 0)} |",
            "",
            "Not computed, by reason (`gan_rejected_requests_total`): "
            + (", ".join(f"{k} {v:,.0f}" for k, v in sorted(rejected.items())) or "none"),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--path", default="inprocess", choices=["inprocess", "adaptive"])
    parser.add_argument("--short", action="store_true", help="2 minutes")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    if args.short:
        args.minutes = 2
    print(f"soak: {args.path}, {args.clients} clients × {args.minutes} min ...")
    rows, before, rejected = soak(args.path, args.minutes, args.clients)
    text = table(args.path, args.clients, rows, before, rejected)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
