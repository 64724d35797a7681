"""One command for every benchmark: raw ORT, then bare, naive and the service under the same
load generator; writes BENCHMARKS.md with machine, versions, tables and the target ratios.

    python -m bench.run [--seconds 8] [--clients 1 8 32 64 128] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path

from bench import flops, inference, loadgen, machine, report, servers, targets
from bench.common import ROOT, describe_options, devices, session, shipped_models


def _conditions(phase: str) -> list[str]:
    busy = machine.busy_processes()
    line = f"Load average {phase}: {machine.load_average()} (1/5/15 min)"
    if busy:
        line += (
            f"; **{len(busy)} training process(es) were running** and competing for the "
            "CPU, so absolute numbers are depressed and noisy"
        )
    return [line]


def _load_points(
    server: servers.Server, clients: list[int], seconds: float, model: str, mixes: list[str]
) -> list[loadgen.LoadPoint]:
    points = []
    print(f"[{server.name}] starting", flush=True)
    with server.start() as srv:
        for mix in mixes:
            for c in clients:
                point = asyncio.run(
                    loadgen.measure(
                        srv.url, server.name, c, seconds, mix, model, cpu_seconds=srv.cpu_seconds
                    )
                )
                print(loadgen.fmt_point(point), flush=True)
                points.append(point)
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per load point")
    p.add_argument("--inference-seconds", type=float, default=1.5)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    p.add_argument("--mixes", nargs="+", default=list(targets.MIXES))
    p.add_argument("--servers", nargs="+", default=None, help="subset of server names")
    p.add_argument("--model", default=None, help="model to load-test (default: first cGAN)")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=None, help="also dump raw results here")
    args = p.parse_args()

    t0 = time.time()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    models = shipped_models()
    load_model = args.model or next((m.name for m in models if m.card.conditional), models[0].name)
    device = "cuda" if "cuda" in devices() else "cpu"
    conditions = _conditions("at start")

    print("FLOPs per image", flush=True)
    counted = flops.run()
    print("raw ONNX Runtime", flush=True)
    raw = inference.run(args.inference_seconds)
    load_session = session(next(m for m in models if m.name == load_model), device)
    chosen = [s for s in servers.all_servers() if not args.servers or s.name in args.servers]
    load: list[loadgen.LoadPoint] = []
    failures: list[str] = []
    for server in chosen:
        try:
            load += _load_points(server, args.clients, args.seconds, load_model, args.mixes)
        except (RuntimeError, TimeoutError, OSError) as exc:  # report it, measure the rest
            print(f"[{server.name}] failed: {exc}", flush=True)
            failures.append(f"**{server.name} could not be measured**: {str(exc)[:300]}")

    conditions += _conditions("at end") + failures
    run = report.Run(
        started=started,
        wall_s=time.time() - t0,
        machine=machine.describe(),
        conditions=conditions,
        session_options=describe_options(load_session),
        load_model=load_model,
        device=device,
        seconds_per_point=args.seconds,
        flops=counted,
        raw=raw,
        load=load,
        servers={s.name: s.description for s in chosen},
        notes=targets.explain(raw, load, load_model, device),
        targets={
            s.name: targets.evaluate(raw, load, load_model, device, s.name)
            for s in chosen
            if s.name.startswith(("service", "svc-"))
        },
    )
    args.out.write_text(report.render(run) + "\n")
    if args.json:
        args.json.write_text(json.dumps(asdict(run), indent=1, default=str))
    for name, table in run.targets.items():
        print(f"targets for {name}:")
        print("\n".join(report.targets_table(table)))
    print(f"wrote {args.out} in {run.wall_s / 60:.1f} min")


if __name__ == "__main__":
    main()
