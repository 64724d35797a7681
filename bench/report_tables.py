"""Markdown tables shared by the BENCHMARKS.md sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.inference import InferencePoint
from bench.loadgen import LoadPoint
from bench.targets import Target

if TYPE_CHECKING:
    pass


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _met(t: Target) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[t.met]


def targets_table(targets: list[Target]) -> list[str]:
    return _table(
        ["target", "goal", "measured", "ratio", "result"],
        [
            [t.name, t.goal, t.measured, f"{t.ratio:.2f}" if t.ratio is not None else "–", _met(t)]
            for t in targets
        ],
    )


def _raw_tables(raw: list[InferencePoint]) -> list[str]:
    out: list[str] = []
    for device in dict.fromkeys(p.device for p in raw):
        pts = [p for p in raw if p.device == device]
        models = list(dict.fromkeys(p.model for p in pts))
        streams = sorted({p.streams for p in pts})
        header = ["batch"]
        for m in models:
            header += [f"{m} img/s ×{k}" for k in streams] + [f"{m} p50 ms"]
        rows = []
        for b in sorted({p.batch for p in pts}):
            row = [str(b)]
            for m in models:
                by_k = {p.streams: p for p in pts if p.model == m and p.batch == b}
                row += [f"{by_k[k].images_per_s:,.0f}" if k in by_k else "–" for k in streams]
                row.append(f"{by_k[1].p50_ms:.2f}" if 1 in by_k else "–")
            rows.append(row)
        out += [
            f"**{device.upper()}** (×k = k callers sharing one session)",
            "",
            *_table(header, rows),
            "",
        ]
    return out


def _load_tables(load: list[LoadPoint]) -> list[str]:
    out: list[str] = []
    for mix in dict.fromkeys(p.mix for p in load):
        title = "one image per request" if mix == "single" else "n = 1..16 images per request"
        rows = [
            [
                p.server,
                str(p.clients),
                f"{p.req_per_s:,.0f}",
                f"{p.images_per_s:,.0f}",
                f"{p.p50_ms:.1f}",
                f"{p.p95_ms:.1f}",
                f"{p.p99_ms:.1f}",
                str(p.errors),
                f"{p.mean_batch:.1f}" if p.mean_batch is not None else "–",
                f"{p.server_cpu_ms:.2f}" if p.server_cpu_ms is not None else "–",
            ]
            for p in load
            if p.mix == mix
        ]
        out += [
            f"### Load: {title}",
            "",
            *_table(
                [
                    "server",
                    "clients",
                    "req/s",
                    "images/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "errors",
                    "mean batch",
                    "server CPU ms/req",
                ],
                rows,
            ),
            "",
        ]
        samples = [(p, s) for p in load if p.mix == mix for s in p.error_samples[:2]]
        if samples:
            out += ["Error samples:", ""]
            out += [f"- {p.server} c={p.clients}: `{s}`" for p, s in samples]
            out.append("")
    return out


def _latency_rows(points: list[tuple[str, LoadPoint]]) -> list[list[str]]:
    rows = []
    for label, p in points:
        total = sum(p.histogram) or 1
        rows.append(
            [
                label,
                str(p.clients),
                f"{p.images_per_s:,.0f}",
                f"{p.p50_ms:.1f}",
                f"{p.p95_ms:.1f}",
                f"{p.p99_ms:.1f}",
                f"{p.p999_ms:.1f}",
                f"{p.max_ms:.1f}",
                " / ".join(str(c) for c in p.connections) or "–",
                *[f"{n / total:.1%}" if n else "·" for n in p.histogram],
            ]
        )
    return rows
