"""Bulk generation under load: a job's images/s against raw ONNX Runtime at the job's batch
size, and what the job does to interactive latency.

    python -m bench.jobs [--images 100000] [--model fashion-cgan] [--clients 8] [--seconds 10]
                         [--out BENCHMARKS.md]

1. Raw ORT: the service's `Engine` at batch `GAN_JOBS_CHUNK_IMAGES`, one caller, once at the
   job thread's CPU priority (`GAN_JOBS_NICE`) and once at normal priority.
2. A `bentoml serve` (harness.live_server) with its defaults; `--clients` closed-loop
   clients of single-image `/generate` (bench.loadgen) for `--seconds`: p99 without a job.
3. The job is submitted; the same load runs while it does: p99 during the job, and the
   job's images/s under that load.
4. The job finishes alone: its images/s without interactive load.
5. The load once more after the job, and raw ORT again; "without a job" is the mean of the
   windows before and after, raw ORT the mean of its two runs (the machine is shared).

Writes a "## Jobs" section into `--out` (replacing only that section) when given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import shipped_models
from bench.inference import measure as measure_ort
from bench.loadgen import LoadPoint
from bench.loadgen import measure as measure_load
from harness import REPO_ROOT
from harness.live_server import LiveServer
from service.runtime import settings
from service.settings import JobLimits

HEADING = "## Jobs"


@dataclass
class JobPhase:
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def raw_ort(model: str, batch: int, seconds: float, nice: int) -> float:
    """Raw ORT images/s at `batch`, measured on a thread at `nice` (its own threads inherit it)."""
    entry = next(m for m in shipped_models() if m.name == model)
    result: list[float] = []

    def run() -> None:
        if nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        result.append(measure_ort(entry, "cpu", batch, seconds).images_per_s)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def status(url: str, task_id: str) -> dict:
    return requests.get(f"{url}/jobs/status", params={"task_id": task_id}, timeout=30).json()


def load(url: str, model: str, clients: int, seconds: float, name: str) -> LoadPoint:
    return asyncio.run(measure_load(url, name, clients, seconds, "single", model))


def run(args: argparse.Namespace) -> dict:
    limits = JobLimits.from_env(settings())
    chunk, nice = limits.chunk_images, limits.nice
    out: dict = {"model": args.model, "images": args.images, "chunk": chunk, "nice": nice}
    ort_before = (
        raw_ort(args.model, chunk, args.ort_seconds, nice),
        raw_ort(args.model, chunk, args.ort_seconds, 0),
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-jobs-") as jobs_dir,
        LiveServer(env={"GAN_JOBS_DIR": jobs_dir}) as server,
    ):
        url = server.url
        out["batching"] = requests.get(f"{url}/models", timeout=30).json().get("batching")
        before = load(url, args.model, args.clients, args.seconds, "before")
        body = {"model": args.model, "total": args.images, "seed": 0, "format": "npz"}
        task_id = requests.post(f"{url}/jobs/submit", json=body, timeout=30).json()["task_id"]
        while status(url, task_id)["status"] == "pending":
            time.sleep(0.05)
        t0, done0 = time.monotonic(), status(url, task_id)["done"]
        during = load(url, args.model, args.clients, args.seconds, "during job")
        t1, done1 = time.monotonic(), status(url, task_id)["done"]
        while (st := status(url, task_id))["status"] == "in_progress":
            time.sleep(0.5)
        t2 = time.monotonic()
        if st["status"] != "completed":
            raise RuntimeError(f"the job ended {st['status']}: {st['error']}")
        after = load(url, args.model, args.clients, args.seconds, "after")
    ort_after = (
        raw_ort(args.model, chunk, args.ort_seconds, nice),
        raw_ort(args.model, chunk, args.ort_seconds, 0),
    )
    out.update(
        ort_niced=(ort_before[0] + ort_after[0]) / 2,
        ort_normal=(ort_before[1] + ort_after[1]) / 2,
        ort_runs=(ort_before, ort_after),
        under_load=JobPhase(done1 - done0, t1 - t0),
        alone=JobPhase(args.images - done1, t2 - t1),
        whole=JobPhase(args.images, t2 - t0),
        result_bytes=st["result_bytes"],
        before=before,
        during=during,
        after=after,
    )
    return out


def table(r: dict) -> str:
    ort, alone = r["ort_niced"], r["alone"].images_per_s
    base_p99 = (r["before"].p99_ms + r["after"].p99_ms) / 2
    lines = [
        HEADING,
        "",
        f"`python -m bench.jobs` (`{r['model']}`, a {r['images']:,}-image npz job, chunks of "
        f"{r['chunk']} images, job thread at nice {r['nice']}; {r['batching']} batching, "
        f"the CPU defaults; {r['during'].clients} closed-loop clients of single-image "
        f"`/generate` for the latency rows). Raw ORT: the service's `Engine` at batch "
        f"{r['chunk']}, one caller, mean of a run before and after the job.",
        "",
        "| what | images/s | vs raw ORT at the job's priority | vs raw ORT at normal priority |",
        "|---|---|---|---|",
        f"| raw ORT, nice {r['nice']} | {ort:,.0f} | 1.00 | |",
        f"| raw ORT, nice 0 | {r['ort_normal']:,.0f} | | 1.00 |",
        f"| job alone ({r['alone'].images:,} images) | {alone:,.0f} | {alone / ort:.2f} | "
        f"{alone / r['ort_normal']:.2f} |",
        f"| job under interactive load ({r['under_load'].images:,} images) | "
        f"{r['under_load'].images_per_s:,.0f} | {r['under_load'].images_per_s / ort:.2f} | |",
        f"| job, submit to done | {r['whole'].images_per_s:,.0f} | | |",
        "",
        "| interactive, single image | req/s | p50 ms | p99 ms | p99 vs without a job | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in (("before the job", r["before"]), ("during the job", r["during"])):
        ratio = p.p99_ms / base_p99
        lines.append(
            f"| {name} | {p.req_per_s:,.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | {ratio:.2f} | "
            f"{p.errors} |"
        )
    p = r["after"]
    lines.append(
        f"| after the job | {p.req_per_s:,.0f} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
        f"{p.p99_ms / base_p99:.2f} | {p.errors} |"
    )
    lines += [
        "",
        f"Targets: job alone >= 0.80 of raw ORT at the same batch size (here "
        f"{alone / ort:.2f}); interactive p99 during the job <= 1.5x without it (here "
        f"{r['during'].p99_ms / base_p99:.2f}x, against the mean of the windows before and "
        f"after). Result file: {r['result_bytes']:,} bytes.",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the "## Jobs" section of `path` (up to the next `## ` heading), or append it."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--model", default="fashion-cgan")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--ort-seconds", type=float, default=4.0)
    p.add_argument("--out", type=Path, default=None, help=f"e.g. {REPO_ROOT / 'BENCHMARKS.md'}")
    args = p.parse_args()
    section = table(run(args))
    print(section)
    if args.out is not None:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
