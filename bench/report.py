"""Render one benchmark run as BENCHMARKS.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.flops import Flops, gpu_name, gpu_peak
from bench.inference import InferencePoint
from bench.loadgen import LoadPoint
from bench.targets import Target


@dataclass
class Run:
    started: str
    wall_s: float
    machine: dict[str, object]
    conditions: list[str]
    session_options: str
    load_model: str
    device: str
    seconds_per_point: float
    flops: list[Flops]
    raw: list[InferencePoint]
    load: list[LoadPoint]
    servers: dict[str, str]  # name -> description
    targets: dict[str, list[Target]]  # per service configuration
    notes: list[str] = field(default_factory=list)


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


def _gpu_section(run: Run) -> list[str]:
    out = ["## GPU", ""]
    if not any(p.device == "cuda" for p in run.raw):
        out += [
            "**No GPU was lent to this task**: every number above is CPU-only, and the CUDA "
            "rows (FP32 vs FP16 images/s per batch size, IO binding vs plain `session.run`, "
            "service throughput at 128 clients, fraction of peak) could not be measured. "
            "`make bench` measures them itself on a machine where `onnxruntime-gpu` sees a "
            "CUDA device: the `cuda` device is added automatically, with an FP16 conversion "
            "of each FP32 model and a `cuda-no-iobinding` pass that shows whether IO binding "
            "(on by default for GPU providers, `GAN_IO_BINDING`) pays on that GPU. The CUDA "
            "path is covered by `tests/test_gpu_engine.py`, which runs wherever CUDA is "
            "available and skips elsewhere.",
            "",
        ]
    out += [
        "FLOPs per generated image, counted from each ONNX graph by `bench/flops.py` "
        "(a multiply-add = 2 FLOPs):",
        "",
        *_table(
            ["model", "MFLOP / image", "of which Gemm/Conv", "elementwise"],
            [
                [f.model, f"{f.total / 1e6:.2f}", f"{f.matmul / 1e6:.2f}", f"{f.other / 1e6:.3f}"]
                for f in run.flops
            ],
        ),
        "",
        "Fraction of peak = images/s × FLOPs/image ÷ peak FLOP/s. For scale: an H100 SXM "
        "offers ~67 TFLOP/s FP32 and ~990 TFLOP/s dense FP16 (tensor cores), so saturating it "
        "with a ~28 MFLOP generator would take ~2.4 M images/s in FP32; these generators are "
        "far too small to be compute-bound on a GPU, and launch/copy overhead dominates.",
    ]
    out += _gpu_fraction(run)
    cpu = [p for p in run.raw if p.device == "cpu"]
    if cpu and run.flops:
        best = {f.model: f for f in run.flops}
        rates = [(p, p.images_per_s * best[p.model].total / 1e9) for p in cpu if p.model in best]
        if rates:
            p, gflops = max(rates, key=lambda r: r[1])
            out += [
                "",
                f"On this CPU the best raw point ({p.model}, batch {p.batch}) sustains "
                f"{gflops:.1f} GFLOP/s.",
            ]
    return [*out, ""]


def _gpu_fraction(run: Run) -> list[str]:
    cuda = [p for p in run.raw if p.device == "cuda"]
    if not cuda:
        return []
    name = gpu_name()
    peaks = gpu_peak(name)
    per_image = {f.model: f.total for f in run.flops}
    rows = []
    for p in cuda:
        base = p.model.removesuffix("-fp16")
        if base not in per_image:
            continue
        tflops = p.images_per_s * per_image[base] / 1e12
        half = p.model.endswith("-fp16")
        peak = peaks[1 if half else 0] if peaks else None
        rows.append(
            [
                p.model,
                str(p.batch),
                f"{p.images_per_s:,.0f}",
                f"{tflops:.2f}",
                f"{tflops * 1e12 / peak:.2%}" if peak else "–",
            ]
        )
    return [
        "",
        f"Fraction of peak on this GPU ({name or 'unknown'}):",
        "",
        *_table(["model", "batch", "img/s", "TFLOP/s", "of peak"], rows),
    ]


def render(run: Run) -> str:
    m = run.machine
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())  # type: ignore[union-attr]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench.run`) on {run.started}, in "
        f"{run.wall_s / 60:.1f} min. Regenerate rather than edit. Benchmarks are "
        "measurements, never pass/fail tests.",
        "",
        "## Conditions",
        "",
        f"- Machine: {m['cpu']}, {m['memory']} RAM, {m['os']}, Python {m['python']}",
        f"- Versions: {versions}",
        f"- ONNX Runtime providers available: {m['ort_providers']}",
        f"- Commit: {m['commit']}",
        f"- Session options (from `service.engine.Engine`): {run.session_options}",
        f"- Load model: `{run.load_model}` on {run.device}; {run.seconds_per_point:g} s per "
        "load point after a 1 s warm-up at the same concurrency; closed-loop clients "
        "(`bench/loadgen.py`, aiohttp, loopback) running on the same machine as the server.",
        *[f"- {c}" for c in run.conditions],
        "",
        "## Targets",
        "",
        "Limit at a load = min(raw ORT images/s at the batch size the service actually "
        "formed, read from `/metrics`; bare server requests/s × images per request).",
        "",
        *[
            line
            for name, table in run.targets.items()
            for line in (f"**{name}** ({run.servers[name]})", "", *targets_table(table), "")
        ],
        *(["What explains them (measured in the same run):", ""] if run.notes else []),
        *[f"- {n}" for n in run.notes],
        *([""] if run.notes else []),
        "## Raw ONNX Runtime `session.run` (the limit)",
        "",
        "Images/s and median latency per call, inputs prepared outside the timed region.",
        "",
        *_raw_tables(run.raw),
        "## Servers under load",
        "",
        *[f"- **{k}**: {v}" for k, v in run.servers.items()],
        "",
        *_load_tables(run.load),
        *_gpu_section(run),
    ]
    return "\n".join(lines)
