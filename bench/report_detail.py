"""BENCHMARKS.md sections: profile, the stand-in generator, the tail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.loadgen import LATENCY_EDGES_MS, LoadPoint
from bench.profile import CATEGORIES, CATEGORY_NAMES
from bench.report_tables import _latency_rows, _raw_tables, _table
from bench.targets import _get

if TYPE_CHECKING:
    from bench.report import Run


def _profile_section(run: Run) -> list[str]:
    if not run.profiles:
        return []
    header = ["category"]
    for prof in run.profiles:
        header.append(f"{prof.server} ms/req")
    rows = []
    for cat in CATEGORIES:
        row = [CATEGORY_NAMES[cat]]
        for prof in run.profiles:
            cpu = prof.point.server_cpu_ms or 0.0
            share = prof.split.shares.get(cat, 0.0)
            row.append(f"{share * cpu:.2f} ({share:.0%})")
        rows.append(row)
    rows.append(
        ["**total server CPU per request**"]
        + [f"**{(p.point.server_cpu_ms or 0.0):.2f}**" for p in run.profiles]
    )
    rows.append(["busy samples"] + [str(p.split.samples) for p in run.profiles])
    detail = []
    for prof in run.profiles:
        parts = [
            f"{cat}: " + ", ".join(f"{d} {s:.0%}" for d, s in prof.split.detail.get(cat, []))
            for cat in ("ours", "bentoml")
            if prof.split.detail.get(cat)
        ]
        detail.append(
            f"- **{prof.server}** ({prof.point.clients} clients, {prof.point.mix}, "
            f"{prof.point.req_per_s:,.0f} req/s): " + "; ".join(parts)
        )
        detail += ["  - hottest: " + ", ".join(f"`{f}` {s:.1%}" for f, s in prof.top[:6])]
        if prof.error:
            detail.append(f"  - profiler: {prof.error}")
    return [
        "## 3. Where a single-image request's CPU goes",
        "",
        "Server CPU per request (all server processes, from /proc) split by py-spy samples "
        "(`bench/profile.py`, `--nonblocking`, every thread, waits left out). A sample "
        "counts for the frame nearest its leaf that is ours (`service/`, `bench/`), ONNX "
        "Runtime's, Pillow's or BentoML's stack (BentoML, Starlette, uvicorn, httptools, "
        "OpenTelemetry, anyio); shared libraries (NumPy, pydantic, prometheus_client, "
        "asyncio) count for their caller.",
        "",
        *_table(header, rows),
        "",
        *detail,
        "",
    ]


def _standin_section(run: Run) -> list[str]:
    if not run.standin_load:
        return []
    f = run.standin
    out = [
        "## 4. Accelerator-shaped run: the stand-in generator",
        "",
        f"`bench/standin.py` builds, in a temporary folder, a generator with `{run.load_model}`'s "
        "inputs and outputs and one linear layer + tanh inside"
        + (f" ({f.total / 1e6:.2f} MFLOP per image)" if f else "")
        + ", with a card (`service.card.ModelCard`, sha256 of the file) that the service "
        "checks like any model. As on a GPU, inference costs next to nothing, so the request "
        "stack sets every figure.",
        "",
        *_raw_tables(run.standin_raw),
        *[f"- **{k}**: {v}" for k, v in run.standin_servers.items()],
        "",
    ]
    servers = list(dict.fromkeys(p.server for p in run.standin_load))
    clients = sorted({p.clients for p in run.standin_load})
    by = {(p.server, p.clients): p for p in run.standin_load}
    bento = {c: by.get(("bare-bento", c)) for c in clients}

    def versus_bento(cell) -> list[list[str]]:
        """One row per server, one cell per client count: `cell(point, bare BentoML's point
        or None)`, "–" where the server has no point there."""
        return [
            [name]
            + [
                "–"
                if by.get((name, c)) is None
                else cell(by[(name, c)], bento[c] if name != "bare-bento" else None)
                for c in clients
            ]
            for name in servers
        ]

    header = ["server", *[f"{c} clients" for c in clients]]
    shares = versus_bento(
        lambda p, b: f"{p.req_per_s:,.0f}" + (f" ({p.req_per_s / b.req_per_s:.0%})" if b else "")
    )
    tails = versus_bento(
        lambda p, b: (
            f"{p.p50_ms:.1f} / {p.p99_ms:.1f}" + (f" ({p.p99_ms / b.p99_ms:.2f}×)" if b else "")
        )
    )
    out += [
        "Requests/s (one image each), and as a share of bare BentoML:",
        "",
        *_table(header, shares),
        "",
        "p50 / p99 ms, and p99 over bare BentoML's:",
        "",
        *_table(header, tails),
        "",
    ]
    rows = [
        [
            p.server,
            str(p.clients),
            f"{p.mean_batch:.1f}" if p.mean_batch is not None else "–",
            f"{p.server_cpu_ms:.2f}" if p.server_cpu_ms is not None else "–",
            " / ".join(str(c) for c in p.connections) or "–",
            str(p.errors),
        ]
        for p in run.standin_load
        if p.server.startswith("svc-") or p.server == "bare-bento"
    ]
    out += [
        "Mean batch (images per `session.run`, from `/metrics`), server CPU per request, and "
        "client connections held by each API worker mid-window:",
        "",
        *_table(
            ["server", "clients", "mean batch", "CPU ms/req", "connections per worker", "errors"],
            rows,
        ),
        "",
    ]
    return out


# Shown beside the tail's "before" server, at its load points: (label, server).
TAIL_ALONGSIDE = (("**after**", "service"), ("naive", "naive"), ("bare BentoML", "bare-bento"))


def _tail_section(run: Run) -> list[str]:
    if not run.tail_before:
        return []
    points: list[tuple[str, LoadPoint]] = []
    for before in run.tail_before:
        points.append((f"before ({before.mix})", before))
        for label, server in TAIL_ALONGSIDE:
            same = _get(run.load, server, before.mix, before.clients)
            if same:
                points.append((f"{label} ({same.mix})", same))
    edges = [f"≤{e:g}" for e in LATENCY_EDGES_MS] + [f">{LATENCY_EDGES_MS[-1]:g}"]
    env = ", ".join(f"{k}={v}" for k, v in run.tail_before_env.items())
    return [
        "## 5. The tail: latency distribution before and after",
        "",
        f"**before**: the service with `{env}` (the earlier behaviour), measured alongside "
        "the others in the same sweep; **after**: the project defaults. Histogram columns are "
        "the share of requests per latency bucket (ms); connections are the clients each API "
        "worker held mid-window.",
        "",
        *_table(
            [
                "server",
                "clients",
                "img/s",
                "p50",
                "p95",
                "p99",
                "p99.9",
                "max",
                "connections per worker",
                *edges,
            ],
            _latency_rows(points),
        ),
        "",
    ]
