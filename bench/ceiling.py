"""The performance issue's targets: the framework ceiling, naive, the stand-in, the tail."""

from __future__ import annotations

import numpy as np

from bench import loadgen
from bench.inference import InferencePoint
from bench.loadgen import LoadPoint
from bench.targets import MIXES, Target, _get

# The performance issue's targets (README "Benchmarks"): the framework's ceiling, never behind
# naive, our overhead on the stand-in model, the tail.
OVERHEAD_SHARE = 0.9  # the service's req/s over bare BentoML's on the stand-in
TAIL_RATIO = 1.2  # the service's p99 over bare BentoML's on the stand-in


def ceiling_bound(
    load: list[LoadPoint],
    mix: str,
    clients: int,
    raw: list[InferencePoint] | None = None,
    model: str = "",
    device: str = "cpu",
) -> float | None:
    """Images/s the naive server's work would reach on BentoML's stack with the best batching
    ORT offers at this load, on the same cores: naive's images/s scaled by its CPU per request
    over that work's, = naive CPU − bare Starlette CPU + bare BentoML CPU − (inference in
    naive's batches, one per request, − inference at ORT's best batch, one caller). Below
    naive's own images/s, a BentoML service cannot match naive at that point on this
    machine's cores.

    The best batch is sought among the measured sizes up to the first one that holds every
    image in flight per worker (clients × images per request ÷ processes): a closed loop
    keeps no more than that in flight, so no batch there can be larger on average, and
    rounding up to a measured size keeps the figure an upper bound. With at most one
    request in flight per worker nothing can be merged: no saving."""
    naive = _get(load, "naive", mix, clients)
    bare = _get(load, "bare", mix, clients)
    bento = _get(load, "bare-bento", mix, clients)
    if not (naive and bare and bento and naive.requests) or None in (
        naive.server_cpu_ms,
        bare.server_cpu_ms,
        bento.server_cpu_ms,
    ):
        return None
    saving_ms = 0.0
    if raw:
        ones = {p.batch: p.images_per_s for p in raw if (p.model, p.device, p.streams) == (
            model, device, 1)}  # fmt: skip
        if 1 in ones:
            per_request = naive.images / naive.requests
            per_worker = clients / max(1, len(naive.connections))  # requests in flight
            if per_worker > 1:  # one request at a time per worker is naive's own batch
                in_flight = per_worker * per_request
                reach = min((b for b in ones if b >= in_flight), default=max(ones))
                best = max(rate for b, rate in ones.items() if b <= reach)
                own_s = naive_seconds_per_image(ones, *loadgen.MIXES[mix])
                saving_ms = max(0.0, per_request * 1e3 * (own_s - 1 / best))
    cpu = naive.server_cpu_ms - bare.server_cpu_ms + bento.server_cpu_ms - saving_ms  # type: ignore[operator]
    if cpu < bento.server_cpu_ms:  # type: ignore[operator]
        return None  # a noisy raw batch-1 figure made the saving exceed the inference
    return naive.images_per_s * naive.server_cpu_ms / cpu  # type: ignore[operator]


def naive_seconds_per_image(rates: dict[int, float], smallest: int, largest: int) -> float:
    """ORT's seconds per image when each request of `smallest..largest` images (equally
    likely) runs as one batch, as naive runs them; images/s between two measured batch
    sizes is read off the straight line between them, which never overstates it."""
    sizes = sorted(rates)
    requests = np.arange(smallest, largest + 1)
    # np.interp draws the straight lines and holds the end values beyond the measured sizes.
    per_size = np.interp(requests, sizes, [rates[b] for b in sizes])
    return float((requests / per_size).sum() / requests.sum())


def ceiling_images(load: list[LoadPoint], mix: str, clients: int) -> float | None:
    """Bare BentoML's images/s at a point (its requests/s × the naive server's images per
    request): the framework alone, with no inference at all."""
    naive = _get(load, "naive", mix, clients)
    bento = _get(load, "bare-bento", mix, clients)
    if not (naive and bento and naive.requests):
        return None
    return bento.req_per_s * naive.images / naive.requests


def versus(
    load: list[LoadPoint], server: str, reference: str, mixes: tuple[str, ...] = MIXES
) -> list[tuple[LoadPoint, LoadPoint]]:
    """(server point, reference point) at every mix and client count both measured."""
    return [
        (s, r)
        for s in load
        if s.server == server and s.mix in mixes
        if (r := _get(load, reference, s.mix, s.clients)) is not None and r.requests > 0
    ]


def issue_targets(
    load: list[LoadPoint],
    standin: list[LoadPoint],
    tail_before: list[LoadPoint],
    service: str | None,
    raw: list[InferencePoint] | None = None,
    model: str = "",
    device: str = "cpu",
) -> list[Target]:
    """`service`: the name the project's defaults run under in the stand-in run."""
    out = []
    pairs = versus(load, "service", "bare-bento")
    if pairs:
        s, b = min(pairs, key=lambda sb: sb[0].req_per_s / sb[1].req_per_s)
        out.append(
            Target(
                "1. framework ceiling: service as share of bare BentoML, shipped model (lowest)",
                "measured",
                f"{s.mix} c={s.clients}: {s.req_per_s:,.0f} of {b.req_per_s:,.0f} req/s",
                s.req_per_s / b.req_per_s,
                None,
            )
        )
    pairs = versus(load, "service", "naive")
    if pairs:
        reachable = [
            (s, n)
            for s, n in pairs
            if (ceiling := ceiling_images(load, s.mix, s.clients)) is None
            or ceiling >= n.images_per_s
        ]
        beyond = [
            (s, n)
            for s, n in reachable
            if (bound := ceiling_bound(load, s.mix, s.clients, raw, model, device)) is not None
            and bound < n.images_per_s
        ]
        s, n = min(pairs, key=lambda sn: sn[0].images_per_s / sn[1].images_per_s)
        ratio = s.images_per_s / n.images_per_s
        note = ""
        if (s, n) not in reachable:
            note = " (a point BentoML's ceiling makes unreachable"
            if reachable:
                rs, rn = min(reachable, key=lambda sn: sn[0].images_per_s / sn[1].images_per_s)
                note += (
                    f"; worst reachable: {rs.mix} c={rs.clients} "
                    f"{rs.images_per_s / rn.images_per_s:.2f}"
                )
            note += f"; {len(pairs) - len(reachable)} of {len(pairs)} points unreachable)"
        if beyond:
            note += (
                f"; {len(beyond)} of {len(pairs)} points beyond the CPU bound of BentoML's stack "
                "plus ORT's best batching (section 2)"
            )
        met = all(s.images_per_s >= n.images_per_s for s, n in reachable) if reachable else None
        out.append(
            Target(
                "2. never behind naive, equal processes (worst point)",
                "≥ 1× at every reachable point",
                f"{s.mix} c={s.clients}: {s.images_per_s:,.0f} vs {n.images_per_s:,.0f} img/s"
                + note,
                ratio,
                met,
            )
        )
    if service:
        pairs = versus(standin, service, "bare-bento", ("single",))
        if pairs:
            s, b = min(pairs, key=lambda sb: sb[0].req_per_s / sb[1].req_per_s)
            ratio = s.req_per_s / b.req_per_s
            out.append(
                Target(
                    f"3. stand-in: {service} req/s vs bare BentoML (lowest)",
                    f"≥ {OVERHEAD_SHARE:.0%} at every concurrency",
                    f"c={s.clients}: {s.req_per_s:,.0f} vs {b.req_per_s:,.0f} req/s",
                    ratio,
                    ratio >= OVERHEAD_SHARE,
                )
            )
            s, b = max(pairs, key=lambda sb: sb[0].p99_ms / sb[1].p99_ms)
            ratio = s.p99_ms / b.p99_ms
            out.append(
                Target(
                    f"3. stand-in: {service} p99 vs bare BentoML (highest)",
                    f"≤ {TAIL_RATIO:.1f}×",
                    f"c={s.clients}: {s.p99_ms:.1f} vs {b.p99_ms:.1f} ms",
                    ratio,
                    ratio <= TAIL_RATIO,
                )
            )
    for before in tail_before:
        after = _get(load, "service", before.mix, before.clients)
        if after is None:
            continue
        out.append(
            Target(
                f"5. tail: service p99 at {before.clients} clients, {before.mix}, before → after",
                "lower",
                f"{before.p99_ms:.0f} → {after.p99_ms:.0f} ms "
                f"(p99.9 {before.p999_ms:.0f} → {after.p999_ms:.0f})",
                after.p99_ms / before.p99_ms,
                after.p99_ms < before.p99_ms,
            )
        )
    return out
