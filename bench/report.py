"""Render one benchmark run as BENCHMARKS.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.flops import Flops, gpu_name, gpu_peak
from bench.inference import InferencePoint
from bench.loadgen import LATENCY_EDGES_MS, LoadPoint
from bench.profile import CATEGORIES, CATEGORY_NAMES, Profile
from bench.targets import Target, ceiling_bound, ceiling_images, versus

# The generated part of BENCHMARKS.md sits between these; everything outside them is kept.
BEGIN = "<!-- bench:begin: written by `make bench`; edit outside these markers -->"
END = "<!-- bench:end -->"


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
    issue: list[Target] = field(default_factory=list)
    standin: Flops | None = None
    standin_raw: list[InferencePoint] = field(default_factory=list)
    standin_load: list[LoadPoint] = field(default_factory=list)
    standin_servers: dict[str, str] = field(default_factory=dict)
    standin_service: str | None = None
    profiles: list[Profile] = field(default_factory=list)
    tail_before: list[LoadPoint] = field(default_factory=list)
    tail_before_env: dict[str, str] = field(default_factory=dict)


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
            "service throughput at 128 clients, GPU utilisation) could not be measured. "
            "`make bench-gpu` (`python -m bench.gpu`, a few minutes) measures them on a CUDA "
            "machine in one shot: the provider each model actually runs on, raw images/s per "
            "batch size in FP32 and FP16 with and without IO binding, the service with the "
            "GPU defaults against the naive server at 1, 64 and 128 clients, and nvidia-smi's "
            "utilisation during the service's run. `make bench-gpu DRY=1` runs every step on "
            "the CPU provider; `tests/bench/test_bench_gpu_dry.py` (marked `slow`) does so "
            "with tiny durations in the test suite. `make bench` also adds the `cuda` rows "
            "here by itself wherever `onnxruntime-gpu` sees a device; "
            "`tests/service/test_gpu_engine.py` covers the CUDA path.",
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
        *_issue_section(run),
        *_ceiling_section(run),
        *_naive_section(run),
        *_profile_section(run),
        *_standin_section(run),
        *_tail_section(run),
        "## Limit targets",
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


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "–"


def _ceiling_section(run: Run) -> list[str]:
    rows = []
    for mix in dict.fromkeys(p.mix for p in run.load):
        for s, b in versus(run.load, "service", "bare-bento", (mix,)):
            bare = next(
                (p for p in run.load if (p.server, p.mix, p.clients) == ("bare", mix, s.clients)),
                None,
            )
            rows.append(
                [
                    mix,
                    str(s.clients),
                    f"{bare.req_per_s:,.0f}" if bare else "–",
                    f"{b.req_per_s:,.0f}",
                    f"{s.req_per_s:,.0f}",
                    f"{s.req_per_s / b.req_per_s:.0%}",
                    f"{b.p99_ms:.1f}",
                    f"{s.p99_ms:.1f}",
                    f"{b.server_cpu_ms:.2f}" if b.server_cpu_ms else "–",
                    f"{s.server_cpu_ms:.2f}" if s.server_cpu_ms else "–",
                ]
            )
    if not rows:
        return []
    return [
        "## 1. The framework's ceiling: bare BentoML",
        "",
        f"`{run.load_model}`, the project defaults. **bare-bento** is `bench/bare_bentoml.py`: "
        "the same BentoML version, worker count and traffic settings, one `@bentoml.api` "
        "validating the same body and answering a constant PNG. Every service figure as a "
        "share of it:",
        "",
        *_table(
            [
                "mix",
                "clients",
                "bare Starlette req/s",
                "bare BentoML req/s",
                "service req/s",
                "service / bare BentoML",
                "bare BentoML p99 ms",
                "service p99 ms",
                "bare BentoML CPU ms/req",
                "service CPU ms/req",
            ],
            rows,
        ),
        "",
    ]


def _naive_section(run: Run) -> list[str]:
    rows = []
    for mix in dict.fromkeys(p.mix for p in run.load):
        for s, n in versus(run.load, "service", "naive", (mix,)):
            ceiling = ceiling_images(run.load, mix, s.clients)
            bound = ceiling_bound(run.load, mix, s.clients, run.raw, run.load_model, run.device)
            ratio = s.images_per_s / n.images_per_s
            if ceiling is not None and ceiling < n.images_per_s:
                verdict = "unreachable (ceiling)"
            elif ratio >= 1:
                verdict = "met"
            elif bound is not None and bound < n.images_per_s:
                verdict = "behind (beyond the CPU bound)"
            else:
                verdict = "**behind**"
            rows.append(
                [
                    mix,
                    str(s.clients),
                    f"{n.images_per_s:,.0f}",
                    f"{s.images_per_s:,.0f}",
                    f"{ratio:.2f}",
                    f"{ceiling:,.0f}" if ceiling is not None else "–",
                    f"{bound:,.0f}" if bound is not None else "–",
                    verdict,
                ]
            )
    if not rows:
        return []
    return [
        "## 2. Never behind naive (equal process counts, the real model)",
        "",
        "**Ceiling**: bare BentoML's requests/s × images per request, the framework with no "
        "inference; a point where it is below naive's images/s is unreachable. **CPU bound**: "
        "the naive server's work on BentoML's stack with ORT's best batching, on the same "
        "cores = naive images/s × naive CPU/req ÷ (naive − bare Starlette + bare BentoML "
        "CPU/req − inference saved by batching); where it is below naive, the service can "
        "only trail naive on this machine, since the stack and inference share its cores.",
        "",
        *_table(
            [
                "mix",
                "clients",
                "naive img/s",
                "service img/s",
                "service / naive",
                "ceiling img/s",
                "CPU bound img/s",
                "result",
            ],
            rows,
        ),
        "",
    ]


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
        "Runtime's, Pillow's or BentoML's stack (BentoML, Starlette, uvicorn, h11, "
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
    rows = []
    for name in servers:
        row = [name]
        for c in clients:
            p = by.get((name, c))
            b = bento[c]
            if p is None:
                row.append("–")
                continue
            share = f" ({p.req_per_s / b.req_per_s:.0%})" if b and name != "bare-bento" else ""
            row.append(f"{p.req_per_s:,.0f}{share}")
        rows.append(row)
    out += [
        "Requests/s (one image each), and as a share of bare BentoML:",
        "",
        *_table(["server", *[f"{c} clients" for c in clients]], rows),
        "",
    ]
    rows = []
    for name in servers:
        row = [name]
        for c in clients:
            p = by.get((name, c))
            b = bento[c]
            if p is None:
                row.append("–")
                continue
            ratio = f" ({p.p99_ms / b.p99_ms:.2f}×)" if b and name != "bare-bento" else ""
            row.append(f"{p.p50_ms:.1f} / {p.p99_ms:.1f}{ratio}")
        rows.append(row)
    out += [
        "p50 / p99 ms, and p99 over bare BentoML's:",
        "",
        *_table(["server", *[f"{c} clients" for c in clients]], rows),
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


def _tail_section(run: Run) -> list[str]:
    if not run.tail_before:
        return []
    points: list[tuple[str, LoadPoint]] = []
    for before in run.tail_before:
        after = next(
            (
                p
                for p in run.load
                if (p.server, p.mix, p.clients) == ("service", before.mix, before.clients)
            ),
            None,
        )
        naive = next(
            (
                p
                for p in run.load
                if (p.server, p.mix, p.clients) == ("naive", before.mix, before.clients)
            ),
            None,
        )
        bento = next(
            (
                p
                for p in run.load
                if (p.server, p.mix, p.clients) == ("bare-bento", before.mix, before.clients)
            ),
            None,
        )
        points.append((f"before ({before.mix})", before))
        if after:
            points.append((f"**after** ({after.mix})", after))
        if naive:
            points.append((f"naive ({naive.mix})", naive))
        if bento:
            points.append((f"bare BentoML ({bento.mix})", bento))
    edges = [f"≤{e:g}" for e in LATENCY_EDGES_MS] + [f">{LATENCY_EDGES_MS[-1]:g}"]
    env = ", ".join(f"{k}={v}" for k, v in run.tail_before_env.items())
    return [
        "## 5. The tail: latency distribution before and after",
        "",
        f"**before**: the service with `{env}` (the earlier behaviour), started in the same "
        "run; **after**: the project defaults. Histogram columns are the share of requests "
        "per latency bucket (ms); connections are the clients each API worker held mid-window.",
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


def _issue_section(run: Run) -> list[str]:
    if not run.issue:
        return []
    return [
        "## Performance targets",
        "",
        "Ratios from this run only (a benchmark, not a test); sections 1-6 below hold the "
        "tables behind each.",
        "",
        *targets_table(run.issue),
        "",
    ]


def merge(existing: str, generated: str) -> str:
    """BENCHMARKS.md with its generated part replaced and everything else kept.

    With markers, what lies outside them stays as it is. Without (a file from before the
    markers), the old generated part is dropped and every `## ` section whose heading the
    generator does not write is kept after the end marker.
    """
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}\n"
    if BEGIN in existing and END in existing:
        head, _, rest = existing.partition(BEGIN)
        _, _, tail = rest.partition(END)
        tail = tail.lstrip("\n")
        return head + block + ("\n" + tail if tail else "")
    ours = {line for line in generated.splitlines() if line.startswith("## ")}
    kept: list[str] = []
    keeping = fenced = False
    for line in existing.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            pass  # a `# comment` in a code block is no heading
        elif line.startswith("## "):
            keeping = line not in ours and not _legacy_heading(line)
        elif line.startswith("# "):
            keeping = False
        if keeping:
            kept.append(line)
    return block + ("\n" + "\n".join(kept).rstrip() + "\n" if kept else "")


def _legacy_heading(line: str) -> bool:
    """Headings the generator wrote before it had markers."""
    return line in (
        "## Conditions",
        "## Targets",
        "## Raw ONNX Runtime `session.run` (the limit)",
        "## Servers under load",
        "## GPU",
    )
