"""One-shot GPU check: what a CUDA machine gives, in a few minutes.

    python -m bench.gpu [--dry-run] [--seconds 2] [--load-seconds 6]    (make bench-gpu [DRY=1])

Prints, in order:
1. the ONNX Runtime provider each model actually runs on (a silent CPU fallback shows here);
2. raw `session.run` images/s per batch size, FP32 and FP16, with and without IO binding;
   then, per cuDNN search mode (`GAN_CUDNN_CONV_SEARCH`), what the first call at a batch size
   the session has not seen costs (the price a batcher pays for every new batch size), and
   the same with batches padded to `GPU_BUCKETS` (`GAN_BATCH_BUCKETS`), warmed at start-up;
3. the service with the GPU defaults (`auto_defaults(accelerator=True)`) against the naive
   server with as many processes, at 1, 64 and 128 single-image clients;
4. GPU utilisation and memory sampled (nvidia-smi) while the service is loaded.
Each load point also lists the client connections each worker held mid-window.

`--dry-run` runs every step on the CPU provider with the same code, so the check is proven
on a machine without a GPU (tests/bench/test_bench_gpu_dry.py runs it with tiny durations).
Without `--dry-run` and without a CUDA device it stops at once, saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import inference, loadgen, servers
from bench.common import providers_for, shipped_models
from harness.fp16 import fp16_variant
from service.engine import GPU_BUCKETS, Engine
from service.inputs import model_inputs
from service.settings import CUDNN_CONV_SEARCH, accelerator_available, auto_defaults

CLIENTS = (1, 64, 128)
BATCHES = (1, 8, 64, 256)
UNSEEN_BATCHES = (2, 3, 5, 12, 24, 48, 100)  # none of them among Engine's warm-up sizes


@dataclass
class UtilSample:
    gpu_percent: float
    memory_mib: float


@dataclass
class GpuSampler:
    """nvidia-smi polled on a thread while the service is loaded."""

    interval_s: float = 0.2
    samples: list[UtilSample] = field(default_factory=list)
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi") is None:
            self.error = "nvidia-smi not found"
            return self
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        query = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", *query], capture_output=True, text=True, timeout=5
                )
                util, mem = out.stdout.splitlines()[0].split(",")[:2]
                self.samples.append(UtilSample(float(util), float(mem)))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
                self.error = f"nvidia-smi: {exc}"
                return
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def summary(self) -> str:
        if not self.samples:
            return f"no samples ({self.error or 'no GPU'})"
        util = sorted(s.gpu_percent for s in self.samples)
        mem = max(s.memory_mib for s in self.samples)
        return (
            f"GPU utilisation mean {sum(util) / len(util):.0f} %, median "
            f"{util[len(util) // 2]:.0f} %, max {util[-1]:.0f} % over {len(util)} samples; "
            f"memory up to {mem:.0f} MiB"
        )


def _providers(device: str) -> None:
    print(f"\n== 1. provider actually used ({device}) ==", flush=True)
    for model in shipped_models():
        engine = Engine(model, providers_for(device), announce=False)
        fallback = device == "cuda" and engine.provider == "CPUExecutionProvider"
        note = "  <-- FELL BACK TO CPU" if fallback else ""
        print(f"  {model.name:<20} {engine.provider}{note}", flush=True)


def _raw(device: str, seconds: float, batches: tuple[int, ...]) -> None:
    print(f"\n== 2. raw ONNX Runtime images/s ({device}) ==", flush=True)
    header = f"  {'model':<20} {'precision':<9} {'io binding':<10}" + "".join(
        f" {'batch ' + str(b):>11}" for b in batches
    )
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        models = shipped_models()
        models += [fp16_variant(m, Path(tmp)) for m in models if m.card.precision == "fp32"]
        for model in models:
            for binding in (True, False):
                rates = [
                    inference.measure(model, device, b, seconds, io_binding=binding).images_per_s
                    for b in batches
                ]
                print(
                    f"  {model.name:<20} {model.card.precision:<9} {'on' if binding else 'off':<10}"
                    + "".join(f" {r:>11,.0f}" for r in rates),
                    flush=True,
                )


def _unseen_batches(device: str) -> None:
    """First call at a batch size the session has not run yet vs later calls, per cuDNN search
    mode with batches at their own size, then with GPU_BUCKETS padding (warmed at start-up)."""
    print(
        f"\n== 2b. first call at an unseen batch size ({device}; sizes "
        f"{', '.join(map(str, UNSEEN_BATCHES))}) ==",
        flush=True,
    )
    print(
        f"  {'model':<20} {'cuDNN search':<12} {'buckets':<8} {'first call ms':>14} "
        f"{'later calls ms':>15}"
    )
    cases = [(mode, ()) for mode in CUDNN_CONV_SEARCH] + [("exhaustive", GPU_BUCKETS)]
    before = os.environ.get("GAN_CUDNN_CONV_SEARCH")
    try:
        for mode, buckets in cases:
            os.environ["GAN_CUDNN_CONV_SEARCH"] = mode
            for model in shipped_models():
                engine = Engine(model, providers_for(device), announce=False, buckets=buckets)
                first, later = [], []
                for n in UNSEEN_BATCHES:
                    feeds = model_inputs(model.card, n)
                    first.append(_timed_ms(engine, feeds))
                    later.append(statistics.median(_timed_ms(engine, feeds) for _ in range(3)))
                print(
                    f"  {model.name:<20} {mode:<12} {'on' if buckets else 'off':<8} "
                    f"{statistics.mean(first):>14.2f} {statistics.mean(later):>15.2f}",
                    flush=True,
                )
    finally:
        if before is None:
            os.environ.pop("GAN_CUDNN_CONV_SEARCH", None)
        else:
            os.environ["GAN_CUDNN_CONV_SEARCH"] = before


def _timed_ms(engine: Engine, feeds: dict) -> float:
    start = time.perf_counter()
    engine.run_float(feeds["z"], feeds.get("y"))
    return (time.perf_counter() - start) * 1000


def _load(device: str, seconds: float, clients: tuple[int, ...], variants: tuple[str, ...]) -> None:
    """The service under the GPU defaults (and each `variants` entry: KEY=VALUE,... on top of
    them) against the naive server with as many processes, single-image clients."""
    batching, workers = auto_defaults(accelerator=True)
    env = {"GAN_BATCHING": batching, "GAN_WORKERS": str(workers)}
    if device == "cpu":
        env["GAN_PROVIDERS"] = "cpu"
    model = next((m.name for m in shipped_models() if m.card.conditional), None)
    print(
        f"\n== 3. service (GPU defaults: GAN_BATCHING={batching}, GAN_WORKERS={workers}) "
        f"vs naive ({workers} process{'es' if workers > 1 else ''}), single images ==",
        flush=True,
    )
    naive_cmd = functools.partial(servers.naive, workers=workers)
    runs = [servers.Server("service", "", servers.bentoml_service, env)]
    for variant in variants:
        # KEY=VALUE pairs split at commas that start a new KEY= (values may hold commas)
        pairs = re.split(r",(?=[A-Z][A-Z0-9_]*=)", variant)
        extra = dict(item.split("=", 1) for item in pairs if item)
        runs.append(servers.Server(f"service {variant}", "", servers.bentoml_service,
                                   {**env, **extra}))  # fmt: skip
    runs.append(
        servers.Server("naive", "", functools.partial(servers.python_server, naive_cmd), env)
    )
    results: dict[str, dict[int, loadgen.LoadPoint]] = {}
    sampler = GpuSampler()
    for server in runs:
        results[server.name] = {}
        with server.start() as srv:
            for c in clients:
                if server is runs[0] and c == max(clients):
                    with sampler:
                        point = _point(srv, server.name, c, seconds, model)
                else:
                    point = _point(srv, server.name, c, seconds, model)
                results[server.name][c] = point
                # Connections per worker: a worker holding most of them caps the rate at its core.
                print(loadgen.fmt_point(point), f"conns {point.connections}", flush=True)
    width = max(len(name) for name in results)
    print(f"\n  {'server':<{width}} {'clients':>7} {'img/s':>9} {'p99 ms':>8} {'/ naive':>8}")
    for name, points in results.items():
        for c in clients:
            s, n = points[c], results["naive"][c]
            ratio = s.images_per_s / n.images_per_s if n.images_per_s else float("nan")
            print(
                f"  {name:<{width}} {c:>7} {s.images_per_s:>9,.0f} {s.p99_ms:>8.1f} {ratio:>8.2f}"
            )
    print(f"\n== 4. GPU during the service's {max(clients)}-client run ==", flush=True)
    print(f"  {sampler.summary()}", flush=True)


def _point(
    srv: servers.Running, name: str, clients: int, seconds: float, model: str | None
) -> loadgen.LoadPoint:
    return asyncio.run(
        loadgen.measure(
            srv.url,
            name,
            clients,
            seconds,
            "single",
            model,
            warmup_s=min(1.0, seconds),
            cpu_seconds=srv.cpu_seconds,
            connections=srv.connections,
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU provider")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per raw point")
    p.add_argument("--load-seconds", type=float, default=6.0, help="seconds per load point")
    p.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    p.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="also run the service with these settings on top of the GPU defaults "
        "(e.g. GAN_CUDNN_CONV_SEARCH=exhaustive); repeatable",
    )
    args = p.parse_args(argv)
    if args.dry_run:
        device = "cpu"
    elif accelerator_available(providers_for("cuda")):
        device = "cuda"
    else:
        print(
            "no CUDA device for ONNX Runtime here (onnxruntime-gpu and an NVIDIA GPU are both "
            "needed); `--dry-run` runs every step on the CPU provider",
            file=sys.stderr,
        )
        return 2
    t0 = time.time()
    print(f"GPU check on {device}{' (dry run: CPU provider)' if args.dry_run else ''}")
    _providers(device)
    _raw(device, args.seconds, tuple(args.batches))
    _unseen_batches(device)
    _load(device, args.load_seconds, tuple(args.clients), tuple(args.variant))
    print(f"\nGPU check done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
