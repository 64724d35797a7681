"""The issue's targets as ratios from one run: service vs the limit, vs naive, latency, errors."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.inference import InferencePoint, images_per_s_at, latency_ms
from bench.loadgen import LoadPoint

MIXES = ("single", "1-16")
SHARE_OF_LIMIT = 0.8
LATENCY_SLACK_MS = 3.0
GAIN_CPU, GAIN_GPU = 2.0, 5.0


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    ratio: float | None
    met: bool | None  # None: not measured in this run


def _get(load: list[LoadPoint], server: str, mix: str, clients: int) -> LoadPoint | None:
    return next(
        (p for p in load if p.server == server and p.mix == mix and p.clients == clients), None
    )


def limit_at(
    raw: list[InferencePoint],
    load: list[LoadPoint],
    model: str,
    device: str,
    mix: str,
    clients: int,
    server: str = "service",
) -> tuple[float, str] | None:
    """min(raw ORT images/s at the batch the service formed, bare req/s × images/request)."""
    svc, bare = _get(load, server, mix, clients), _get(load, "bare", mix, clients)
    if svc is None or bare is None or svc.requests == 0:
        return None
    per_request = svc.images / svc.requests
    http = bare.req_per_s * per_request
    if svc.mean_batch is not None:
        ort_limit = images_per_s_at(raw, model, device, svc.mean_batch)
        why = f"raw ORT at batch {svc.mean_batch:.1f}, best of ×1/×{os.cpu_count()} callers"
    else:  # no batch metric: the best raw throughput is an upper bound
        ort_limit = max(p.images_per_s for p in raw if (p.model, p.device) == (model, device))
        why = "best raw ORT (batch size unknown)"
    if http < ort_limit:
        return http, f"bare HTTP {bare.req_per_s:.0f} req/s × {per_request:.2f} img/req"
    return ort_limit, why


def evaluate(
    raw: list[InferencePoint],
    load: list[LoadPoint],
    model: str,
    device: str,
    server: str = "service",
) -> list[Target]:
    targets = []
    for mix in MIXES:
        svc = _get(load, server, mix, 64)
        lim = limit_at(raw, load, model, device, mix, 64, server)
        name = f"64 clients, {'1 image' if mix == 'single' else 'n=1..16'}: share of limit"
        if svc is None or lim is None:
            targets.append(Target(name, f"≥ {SHARE_OF_LIMIT:.0%}", "not measured", None, None))
            continue
        ratio = svc.images_per_s / lim[0]
        targets.append(
            Target(
                name,
                f"≥ {SHARE_OF_LIMIT:.0%}",
                f"{svc.images_per_s:.0f} of {lim[0]:.0f} img/s ({lim[1]})",
                ratio,
                ratio >= SHARE_OF_LIMIT,
            )
        )

    one = _get(load, server, "single", 1)
    name = "1 client: p50 latency"
    if one is None:
        targets.append(Target(name, "≤ raw batch-1 + 3 ms", "not measured", None, None))
    else:
        bound = latency_ms(raw, model, device, 1) + LATENCY_SLACK_MS
        targets.append(
            Target(
                name,
                f"≤ raw batch-1 + {LATENCY_SLACK_MS:.0f} ms = {bound:.2f} ms",
                f"{one.p50_ms:.2f} ms",
                one.p50_ms / bound,
                one.p50_ms <= bound,
            )
        )

    gain, clients = (GAIN_GPU, 128) if device == "cuda" else (GAIN_CPU, 64)
    svc, naive = _get(load, server, "single", clients), _get(load, "naive", "single", clients)
    name = f"batching gain at {clients} single-image clients vs naive"
    if svc is None or naive is None or naive.images_per_s == 0:
        targets.append(Target(name, f"≥ {gain:.0f}×", "not measured", None, None))
    else:
        ratio = svc.images_per_s / naive.images_per_s
        targets.append(
            Target(
                name,
                f"≥ {gain:.0f}×",
                f"{svc.images_per_s:.0f} vs {naive.images_per_s:.0f} img/s",
                ratio,
                ratio >= gain,
            )
        )

    pairs = [
        (s, n)
        for s in load
        if s.server == server
        if (n := _get(load, "naive", s.mix, s.clients)) is not None and n.images_per_s > 0
    ]
    name = "never behind naive (worst point)"
    if not pairs:
        targets.append(Target(name, "≥ 1×", "not measured", None, None))
    else:
        s, n = min(pairs, key=lambda sn: sn[0].images_per_s / sn[1].images_per_s)
        ratio = s.images_per_s / n.images_per_s
        targets.append(
            Target(
                name,
                "≥ 1× at every point",
                f"{s.mix} c={s.clients}: {s.images_per_s:.0f} vs {n.images_per_s:.0f} img/s",
                ratio,
                ratio >= 1.0,
            )
        )

    svc_points = [p for p in load if p.server == server and p.clients <= 128]
    errors = sum(p.errors for p in svc_points)
    shed = sum(p.shed for p in svc_points)
    targets.append(
        Target(
            "errors but load shedding (503 with Retry-After), 1..128 clients",
            "0",
            f"{errors - shed} in {sum(p.requests + p.errors for p in svc_points)} requests "
            f"({shed} shed)",
            None,
            errors == shed if svc_points else None,
        )
    )
    return targets


def explain(raw: list[InferencePoint], load: list[LoadPoint], model: str, device: str) -> list[str]:
    """Facts that explain the ratios: batching headroom in ORT, CPU cost per request."""
    notes = []
    key = (model, device, 1)
    one = next((p for p in raw if (p.model, p.device, p.streams) == key and p.batch == 1), None)
    big = next((p for p in raw if (p.model, p.device, p.streams) == key and p.batch == 64), None)
    if one and big:
        notes.append(
            f"Batching headroom in ORT alone: `{model}` on {device} runs "
            f"{big.images_per_s / one.images_per_s:.2f}× the images/s at batch 64 than at "
            f"batch 1 ({big.images_per_s:,.0f} vs {one.images_per_s:,.0f}, one caller); no "
            "server that batches can gain more than this over one that does not, except by "
            "using more cores."
        )
    at64 = [p for p in load if p.mix == "single" and p.clients == 64 and p.server_cpu_ms]
    if at64:
        costs = ", ".join(f"{p.server} {p.server_cpu_ms:.2f}" for p in at64)
        notes.append(
            f"Server CPU time per single-image request at 64 clients (ms, all server "
            f"processes): {costs}. On a {_cores()}-core machine, cores ÷ CPU per request bounds "
            "requests/s (the load generator shares those cores)."
        )
    return notes


def _cores() -> int:
    return os.cpu_count() or 1
