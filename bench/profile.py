"""Profile a server under load with py-spy: where do its CPU seconds go?

    python -m bench.profile service --clients 64 --seconds 10 [--mix single] [--env K=V ...]

Starts the server (bench.servers), drives it with bench.loadgen, and samples every process
in its group with `py-spy record --subprocesses`; prints the hottest functions (self time)
and, with --stacks, keeps the collapsed stacks for a flame graph. Samples are taken only
from threads holding the GIL (`--gil`), so idle pool threads do not drown the picture;
ORT's own C++ threads run without the GIL and show up as `Session.run`. py-spy must be
installed (`dev` extra) and allowed to ptrace (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import loadgen, servers
from bench.common import shipped_models


def top_frames(raw_path: Path, limit: int = 25) -> list[tuple[str, float]]:
    """Self-time share per leaf frame from py-spy's collapsed ('raw') output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw_path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[stack.split(";")[-1]] += int(n)
    total = sum(counts.values()) or 1
    return [(frame, n / total) for frame, n in counts.most_common(limit)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    known = {s.name: s for s in servers.all_servers()}
    p.add_argument("server", choices=sorted(known))
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--mix", choices=sorted(loadgen.MIXES), default="single")
    p.add_argument("--env", nargs="*", default=[], help="extra server environment, K=V")
    p.add_argument("--stacks", type=Path, default=None, help="keep the collapsed stacks here")
    args = p.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    server = known[args.server]
    env = dict(kv.split("=", 1) for kv in args.env)
    model = next(m.name for m in shipped_models() if m.card.conditional)
    with server.start(env) as srv, tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        cmd = [
            spy,
            "record",
            "--subprocesses",
            "--pid",
            str(srv.pid),
            "--duration",
            str(int(args.seconds)),
            "--rate",
            "100",
            "--gil",
            "--format",
            "raw",
            "-o",
            str(raw),
        ]
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        point = asyncio.run(
            loadgen.measure(
                srv.url, server.name, args.clients, args.seconds, args.mix, model, warmup_s=0
            )
        )
        _, err = spy_proc.communicate(timeout=60)
        print(loadgen.fmt_point(point))
        if not raw.exists():
            raise SystemExit(f"py-spy wrote nothing: {err.decode()[-2000:]}")
        for frame, share in top_frames(raw):
            print(f"{share:6.1%}  {frame}")
        if args.stacks:
            shutil.copy(raw, args.stacks)
            print(f"collapsed stacks in {args.stacks} (open with speedscope or flamegraph.pl)")


if __name__ == "__main__":
    main()
