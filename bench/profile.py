"""Profile a server under load with py-spy: where do its CPU seconds go?

    python -m bench.profile service --clients 64 --seconds 10 [--mix single] [--env K=V ...]

Starts the server (bench.servers), drives it with bench.loadgen, and samples every process
in its group with `py-spy record --subprocesses --nonblocking`; prints the server CPU time
per request (from /proc) split into inference, encoding, our own request handling and
BentoML's stack (`split`), then the hottest functions (self time); with --stacks it keeps
the collapsed stacks for a flame graph. ONNX Runtime runs on the calling thread
(one intra-op thread) without the GIL, so all threads are sampled and only threads parked
in a wait are left out. py-spy must be installed (`dev` extra) and allowed to ptrace (root,
or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench import loadgen, servers

CATEGORIES = ("inference", "encoding", "ours", "bentoml")
CATEGORY_NAMES = {
    "inference": "inference (ONNX Runtime, uint8 conversion)",
    "encoding": "encoding (Pillow, grid)",
    "ours": "our request handling (service/: plan, latents, batcher, middlewares, metrics)",
    "bentoml": (
        "BentoML's stack (uvicorn, httptools, Starlette, OpenTelemetry, BentoML, event loop)"
    ),
}
# Leaf frames of threads parked in a wait: not CPU time (py-spy's idle detection misses
# some on a loaded machine).
IDLE_LEAVES = (
    "Condition.wait",
    "EpollSelector.select",
    "PollSelector.select",
    "select (",
    "Event.wait",
    "_wait_for_tstate_lock",
    "Thread.join",
    "sleep (",
    "Queue.get",
    "SimpleQueue.get",
    "_worker (concurrent",
    "worker_thread (anyio",
    "_flush_forever (service/heap.py",  # the GC-pause flusher between its once-a-second runs
)
# Top-level packages that are BentoML's request stack (or what it runs on).
FRAMEWORK = (
    "bentoml",
    "_bentoml_impl",
    "_bentoml_sdk",
    "starlette",
    "uvicorn",
    "h11",
    "httptools",
    "opentelemetry",
    "anyio",
    "circus",
    "asgi",  # opentelemetry/instrumentation/asgi: py-spy keeps the last two path parts
)


def _file(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'path/to/file.py'."""
    return frame.rpartition(" (")[2].rstrip(")").rpartition(":")[0]


def classify(frames: list[str]) -> tuple[str, str] | None:
    """(category, detail) of one sampled stack, leaf last; None for an idle thread.

    The frame nearest the leaf that belongs to the service (service/, bench/), to ONNX
    Runtime or Pillow, or to BentoML's stack decides; libraries both sides call (NumPy,
    pydantic, prometheus_client, json, asyncio internals) count for whoever called them.
    """
    if not frames or any(frames[-1].startswith(idle) for idle in IDLE_LEAVES):
        return None
    for frame in reversed(frames):
        path = _file(frame)
        top = path.split("/", 1)[0]
        name = frame.partition(" (")[0]
        if top in ("service", "bench"):
            if path.endswith(("engine.py",)) or name == "to_uint8":
                return "inference", path
            if path.endswith(("render.py", "imaging.py")):
                return "encoding", path
            return "ours", path
        if top == "onnxruntime":
            return "inference", "onnxruntime"
        if top == "PIL":
            return "encoding", "PIL"
        if top in FRAMEWORK:
            return "bentoml", top
    return "bentoml", "event loop / interpreter"


@dataclass
class Split:
    """Sample shares per category, and the finer detail inside each."""

    samples: int = 0
    shares: dict[str, float] = field(default_factory=dict)
    detail: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


def split(lines: Iterable[str]) -> Split:
    """Category shares of the busy samples in py-spy's collapsed ('raw') output."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in lines:
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        decided = classify(frames)
        if decided is not None:
            counts[decided] += int(n)
    total = sum(counts.values())
    if not total:
        return Split()
    shares = {c: sum(n for (cat, _), n in counts.items() if cat == c) / total for c in CATEGORIES}
    detail = {
        c: sorted(
            ((d, n / total) for (cat, d), n in counts.items() if cat == c), key=lambda x: -x[1]
        )[:6]
        for c in CATEGORIES
    }
    return Split(samples=total, shares=shares, detail=detail)


def top_frames(raw_path: Path, limit: int = 25) -> list[tuple[str, float]]:
    """Self-time share per leaf frame from py-spy's collapsed ('raw') output, idle left out."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            leaf = stack.split(";")[-1]
            if not any(leaf.startswith(idle) for idle in IDLE_LEAVES):
                counts[leaf] += int(n)
    total = sum(counts.values()) or 1
    return [(frame, n / total) for frame, n in counts.most_common(limit)]


@dataclass
class Profile:
    server: str
    point: loadgen.LoadPoint
    split: Split
    top: list[tuple[str, float]]
    error: str = ""


def py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


def profile(
    server: servers.Server,
    clients: int,
    seconds: float,
    mix: str,
    model: str,
    env: dict[str, str] | None = None,
    stacks: Path | None = None,
) -> Profile:
    """Start `server`, load it for `seconds` while py-spy samples every process in its tree."""
    with server.start(env) as srv:
        # Warm-up first, so the samples hold steady state only.
        asyncio.run(loadgen.measure(srv.url, server.name, clients, 1.0, mix, model, warmup_s=0))
        return profile_running(srv, server.name, clients, seconds, mix, model, stacks)


def profile_running(
    srv: servers.Running,
    name: str,
    clients: int,
    seconds: float,
    mix: str,
    model: str | None,
    stacks: Path | None = None,
) -> Profile:
    """Load a running, warmed-up server for `seconds` while py-spy samples it."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        cmd = [
            py_spy(),
            "record",
            "--subprocesses",
            "--nonblocking",  # never pause the server: the figures stay those of a free run
            "--pid",
            str(srv.pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "-o",
            str(raw),
        ]
        try:
            spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            point = asyncio.run(
                loadgen.measure(srv.url, name, clients, seconds, mix, model, warmup_s=0)
            )
            return Profile(name, point, Split(), [], f"py-spy could not start: {exc}")
        point = asyncio.run(
            loadgen.measure(
                srv.url,
                name,
                clients,
                seconds,
                mix,
                model,
                warmup_s=0,
                cpu_seconds=srv.cpu_seconds,
            )
        )
        _, err = spy_proc.communicate(timeout=120)
        if not raw.exists():
            return Profile(name, point, Split(), [], f"py-spy wrote nothing: {err[-300:]!r}")
        if stacks:
            shutil.copy(raw, stacks)
        return Profile(name, point, split(raw.read_text().splitlines()), top_frames(raw))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    known = {s.name: s for s in servers.all_servers()}
    p.add_argument("server", choices=sorted(known))
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--mix", choices=sorted(loadgen.MIXES), default="single")
    p.add_argument("--model", default="fashion-cgan")
    p.add_argument("--env", nargs="*", default=[], help="extra server environment, K=V")
    p.add_argument("--stacks", type=Path, default=None, help="keep the collapsed stacks here")
    args = p.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    result = profile(
        known[args.server], args.clients, args.seconds, args.mix, args.model, env, args.stacks
    )
    print(loadgen.fmt_point(result.point))
    if result.error:
        raise SystemExit(result.error)
    cpu = result.point.server_cpu_ms or 0.0
    print(f"server CPU per request {cpu:.2f} ms, {result.split.samples} busy samples:")
    for cat in CATEGORIES:
        share = result.split.shares.get(cat, 0.0)
        inner = ", ".join(f"{d} {s:.0%}" for d, s in result.split.detail.get(cat, []))
        print(f"  {share:6.1%} {share * cpu:6.2f} ms  {CATEGORY_NAMES[cat]}  [{inner}]")
    for frame, share in result.top:
        print(f"{share:6.1%}  {frame}")
    if args.stacks:
        print(f"collapsed stacks in {args.stacks} (open with speedscope or flamegraph.pl)")


if __name__ == "__main__":
    main()
