"""The limit: raw ONNX Runtime `session.run` throughput and latency per model and batch size.

    python -m bench.inference [--seconds 1.5] [--batches 1 8 32 64 128 256]

Calls go through the service's own `Engine.run_float` (same session options, thread count
and IO binding choice), on CPU and, where onnxruntime-gpu sees one, on CUDA. On CPU each
point is measured with one caller and with one caller per core sharing the session (the
in-process service runs up to GAN_BATCHES_IN_FLIGHT batches at once). On CUDA an FP16
conversion of each FP32 model is measured too, and each model once more without IO binding
(device `cuda-no-iobinding`), which shows whether the binding pays on that GPU.
Inputs are built outside the timed region.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.common import devices, providers_for, shipped_models
from harness.fp16 import fp16_variant
from service.engine import Engine
from service.inputs import model_inputs
from service.registry import ModelEntry
from service.settings import Settings

# 2 and 4: the batches a few clients per worker can form (target 2's CPU bound reads them).
BATCHES = (1, 2, 4, 8, 32, 64, 128, 256)


@dataclass
class InferencePoint:
    model: str
    device: str
    batch: int
    streams: int  # concurrent callers of the one session, as the in-process service does
    runs: int
    images_per_s: float
    p50_ms: float
    p95_ms: float


NO_IO_BINDING = "-no-iobinding"  # device suffix of the points measured without IO binding


def _loop(call: Callable[[], object], deadline: float, times: list[float]) -> None:
    while time.perf_counter() < deadline or len(times) < 5:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)


def measure(
    model: ModelEntry,
    device: str,
    batch: int,
    seconds: float,
    streams: int = 1,
    io_binding: bool | None = None,
) -> InferencePoint:
    """`io_binding` None: as the service runs it; False: plain `session.run` (labelled)."""
    settings = Settings.from_env()
    binding = settings.io_binding if io_binding is None else io_binding
    engine = Engine(
        model, providers_for(device), settings.ort_threads, announce=False, io_binding=binding
    )
    feeds = model_inputs(model.card, batch, seed=batch)

    def call() -> object:
        return engine.run_float(feeds["z"], feeds.get("y"))

    for _ in range(3):  # warm-up: allocations, kernel selection
        call()
    per_stream: list[list[float]] = [[] for _ in range(streams)]
    t0 = time.perf_counter()
    threads = [  # ORT releases the GIL in run(): streams really run in parallel
        threading.Thread(target=_loop, args=(call, t0 + seconds, times)) for times in per_stream
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    arr = np.concatenate([np.array(t) for t in per_stream])
    return InferencePoint(
        model=model.name,
        device=device if io_binding is not False else device + NO_IO_BINDING,
        batch=batch,
        streams=streams,
        runs=len(arr),
        images_per_s=batch * len(arr) / wall,
        p50_ms=float(np.percentile(arr, 50) * 1e3),
        p95_ms=float(np.percentile(arr, 95) * 1e3),
    )


def _variants(device: str, tmp: Path) -> list[ModelEntry]:
    """The shipped models; on CUDA also an FP16 conversion of each FP32 one."""
    models = shipped_models()
    if device == "cuda":
        models += [fp16_variant(m, tmp) for m in models if m.card.precision == "fp32"]
    return models


def run(seconds: float = 1.5, batches: tuple[int, ...] = BATCHES) -> list[InferencePoint]:
    """Every model × device × batch, with one caller and (on CPU) one caller per core."""
    points = []
    with tempfile.TemporaryDirectory(prefix="bench-fp16-") as tmp:
        for device in devices():
            streams_list = sorted({1, os.cpu_count() or 1}) if device == "cpu" else [1]
            bindings = [None, False] if device == "cuda" else [None]
            for model, streams, binding in itertools.product(
                _variants(device, Path(tmp)), streams_list, bindings
            ):
                for batch in batches:
                    point = measure(model, device, batch, seconds, streams, binding)
                    print(
                        f"  {point.model:<20} {point.device:<4} x{streams} batch {batch:>3}: "
                        f"{point.images_per_s:9.0f} img/s  p50 {point.p50_ms:7.2f} ms",
                        flush=True,
                    )
                    points.append(point)
    return points


def images_per_s_at(points: list[InferencePoint], model: str, device: str, batch: float) -> float:
    """Best raw images/s (over stream counts) at a fractional batch size, log-interpolated."""
    best: dict[int, float] = {}  # batch -> best images/s over stream counts
    for p in points:
        if p.model == model and p.device == device:
            best[p.batch] = max(best.get(p.batch, 0.0), p.images_per_s)
    curve = sorted(best.items())
    if not curve:
        raise KeyError(f"no inference points for {model} on {device}")
    if batch <= curve[0][0]:
        return curve[0][1]
    for (b0, r0), (b1, r1) in itertools.pairwise(curve):
        if batch <= b1:
            t = (math.log(batch) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return r0 + t * (r1 - r0)
    return curve[-1][1]


def latency_ms(points: list[InferencePoint], model: str, device: str, batch: int) -> float:
    """Median single-caller latency of one call."""
    return next(
        p.p50_ms
        for p in points
        if (p.model, p.device, p.batch, p.streams) == (model, device, batch, 1)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=1.5, help="timed seconds per point")
    p.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    args = p.parse_args()
    for point in run(args.seconds, tuple(args.batches)):
        print(asdict(point))


if __name__ == "__main__":
    main()
