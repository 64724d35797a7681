"""One command for every benchmark: raw ORT, then bare, bare BentoML, naive and the service
under the same load generator, a CPU profile split, the accelerator-shaped stand-in run and
the tail before/after; writes its part of BENCHMARKS.md (between markers; the rest is kept).

    python -m bench.run [--seconds 6] [--clients 1 8 32 64 128] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench import (
    ceiling,
    flops,
    inference,
    loadgen,
    machine,
    profile,
    report,
    servers,
    standin,
    sweep,
    targets,
)
from bench.common import ROOT, describe_options, devices, session
from service.registry import load_entry

# The service with the request-path changes made for the tail turned off (OpenTelemetry's
# middleware back on the routes, no inline calls, one thread takes the whole queue, no
# connection spread, Python's own garbage-collection settings), measured alongside the
# service in the same sweep so the latency distributions compare like for like.
TAIL_BEFORE_ENV = {
    "GAN_TRACING": "on",
    "GAN_INLINE_MAX_US": "0",
    "GAN_SPLIT_BATCHES": "off",
    "GAN_CONNECTION_SPREAD": "off",
    "GAN_GC_FREEZE": "off",
    "GAN_GC_YOUNG_THRESHOLD": "700",
}
TAIL_CLIENTS = (64,)
PROFILE_CLIENTS = 64


def _conditions(phase: str) -> list[str]:
    busy = machine.busy_processes()
    line = f"Load average {phase}: {machine.load_average()} (1/5/15 min)"
    if busy:
        names = sorted({" ".join(b.split()[1:4]) for b in busy})
        line += (
            f"; **{len(busy)} other process(es) were competing for the CPU** ("
            + "; ".join(f"`{n}`" for n in names)
            + "), so absolute numbers are depressed and noisy"
        )
    return [line]


def _point(
    srv: servers.Running, name: str, clients: int, seconds: float, mix: str, model: str
) -> loadgen.LoadPoint:
    point = asyncio.run(
        loadgen.measure(
            srv.url,
            name,
            clients,
            seconds,
            mix,
            model,
            cpu_seconds=srv.cpu_seconds,
            connections=srv.connections,
        )
    )
    print(loadgen.fmt_point(point), f"conns {point.connections}", flush=True)
    return point


def _measure_all(
    plans: list[sweep.Plan],
    model: str,
    seconds: float,
    profiled: set[str],
    profile_seconds: float,
    failures: list[str],
) -> tuple[list[loadgen.LoadPoint], list[profile.Profile]]:
    """Every plan's points, interleaved across servers (`bench/sweep.py`); then, for the
    `profiled` servers, one more window at PROFILE_CLIENTS single-image clients under py-spy."""
    profiles: list[profile.Profile] = []

    def measure(srv: servers.Running, name: str, clients: int, mix: str) -> loadgen.LoadPoint:
        return _point(srv, name, clients, seconds, mix, model)

    def sample(name: str, srv: servers.Running) -> None:
        if name in profiled and profile_seconds > 0:
            sampled = profile.profile_running(
                srv, name, PROFILE_CLIENTS, profile_seconds, "single", model
            )
            print(f"[{name}] profile {sampled.split.shares} {sampled.error}", flush=True)
            profiles.append(sampled)

    most = max(clients for plan in plans for _, clients in plan.points)
    load = sweep.run(plans, measure, sweep.warm_up_at(most, model), failures, after=sample)
    return load, profiles


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per load point")
    p.add_argument("--standin-seconds", type=float, default=3.0, help="same, stand-in model")
    p.add_argument("--profile-seconds", type=float, default=6.0, help="0: no py-spy split")
    p.add_argument("--inference-seconds", type=float, default=1.5)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    p.add_argument("--mixes", nargs="+", default=list(targets.MIXES))
    p.add_argument("--servers", nargs="+", default=None, help="subset of server names")
    p.add_argument("--no-standin", action="store_true", help="skip the stand-in model run")
    p.add_argument("--no-tail", action="store_true", help="skip the tail before/after run")
    p.add_argument("--model", default=None, help="model to load-test (default: first cGAN)")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "latest.json",
        help="raw results dumped here (bench/results/ is not tracked)",
    )
    args = p.parse_args()

    t0 = time.time()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    from bench.common import shipped_models

    models = shipped_models()
    load_model = args.model or next((m.name for m in models if m.card.conditional), models[0].name)
    device = "cuda" if "cuda" in devices() else "cpu"
    conditions = _conditions("at start")
    failures: list[str] = []

    print("FLOPs per image", flush=True)
    counted = flops.run()
    print("raw ONNX Runtime", flush=True)
    raw = inference.run(args.inference_seconds)
    load_session = session(next(m for m in models if m.name == load_model), device)
    chosen = [s for s in servers.all_servers() if not args.servers or s.name in args.servers]
    points = [(mix, c) for mix in args.mixes for c in args.clients]
    plans = [sweep.Plan(s, points) for s in chosen]
    if not args.no_tail and any(s.name == "service" for s in chosen):
        # The service with the tail's changes turned off, measured alongside it.
        before = servers.Server("before", "", servers.bentoml_service, TAIL_BEFORE_ENV)
        plans.append(sweep.Plan(before, [("single", c) for c in TAIL_CLIENTS]))
    measured, profiles = _measure_all(
        plans,
        load_model,
        args.seconds,
        {"service", "bare-bento"},
        args.profile_seconds,
        failures,
    )
    load = [p for p in measured if p.server != "before"]
    tail_before = [p for p in measured if p.server == "before"]

    conditions += _conditions("after the shipped model's run")
    standin_run: dict[str, object] = {}
    if not args.no_standin:
        with tempfile.TemporaryDirectory(prefix="bench-standin-") as tmp:
            folder = standin.build(Path(tmp), load_model)
            entry = load_entry(folder)
            print(f"stand-in model {entry.name}", flush=True)
            standin_raw = [
                inference.measure(entry, device, b, args.inference_seconds / 2, streams)
                for streams in sorted({1, 2})
                for b in inference.BATCHES
            ]
            stand_servers = [
                s
                for s in servers.standin_servers(tmp)
                if not args.servers or s.name in args.servers or s.name.startswith("svc-")
            ]
            default_name = _standin_default(stand_servers)
            stand_load, stand_profiles = _measure_all(
                [sweep.Plan(s, [("single", c) for c in args.clients]) for s in stand_servers],
                entry.name,
                args.standin_seconds,
                {default_name} if default_name else set(),
                args.profile_seconds,
                failures,
            )
            for prof in stand_profiles:
                prof.server = f"{prof.server} (stand-in)"
            standin_run = {
                "standin": flops.count(entry.onnx_path, entry.name),
                "standin_raw": standin_raw,
                "standin_load": stand_load,
                "standin_servers": {s.name: s.description for s in stand_servers},
                "standin_service": default_name,
            }
            profiles += stand_profiles

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
        issue=ceiling.issue_targets(
            load,
            standin_run.get("standin_load", []),  # type: ignore[arg-type]
            tail_before,
            standin_run.get("standin_service"),  # type: ignore[arg-type]
            raw,
            load_model,
            device,
        ),
        profiles=profiles,
        tail_before=tail_before,
        tail_before_env=TAIL_BEFORE_ENV,
        **standin_run,  # type: ignore[arg-type]
    )
    run.wall_s = time.time() - t0
    existing = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(report.merge(existing, report.render(run)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(run), indent=1, default=str))
    print("\n".join(report.targets_table(run.issue)))
    print(f"wrote {args.out} in {run.wall_s / 60:.1f} min")


def _standin_default(stand_servers: list[servers.Server]) -> str | None:
    """The stand-in server running what the project's `auto` defaults pick on this host."""
    from service.settings import Settings

    settings = Settings.from_env()
    name = f"svc-{settings.batching[:5]}-{settings.workers}w"
    return name if any(s.name == name for s in stand_servers) else None


if __name__ == "__main__":
    main()
