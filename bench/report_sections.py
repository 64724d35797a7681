"""BENCHMARKS.md sections: targets, the framework ceiling, naive, the GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.ceiling import ceiling_bound, ceiling_images, versus
from bench.flops import gpu_name, gpu_peak
from bench.report_tables import _table, targets_table

if TYPE_CHECKING:
    from bench.report import Run


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
        "only trail naive on this machine, since the stack and inference share its cores. "
        "The batching saving is against naive's own batches (one per request, of its "
        "images) and counts ORT's best measured batch size up to the first that holds all "
        "the images in flight per worker (clients × images per request ÷ processes): at 1 "
        "client there is nothing more to batch.",
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
