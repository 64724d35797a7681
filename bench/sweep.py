"""Load points measured on every server in turn, with all the servers started at once.

This host's speed drifts by 20-30 % within minutes (README "Batching"). Measured one server
after another, each server's whole sweep saw a different machine, and a ratio between two of
them (the service against naive or bare BentoML, which the performance targets are) carried
that drift. Here every server is started first; then each load point is measured on every
server back to back, in an order rotated from one point to the next, so the figures a ratio
compares are seconds apart and no server is always the first or last to run. The servers
waiting their turn sit idle: under 1 % of a core each (measured with all five of the
shipped model's servers up).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from bench import loadgen, servers

Point = tuple[str, int]  # (mix, clients)


@dataclass(frozen=True)
class Plan:
    """One server and the load points it is measured at."""

    server: servers.Server
    points: list[Point]


def schedule(plans: list[Plan]) -> list[tuple[Point, list[str]]]:
    """Each load point (in first-seen order) with the servers to measure it on, in turn: the
    plans' order rotated by one more place at every point."""
    order: list[Point] = []
    for plan in plans:
        order += [p for p in plan.points if p not in order]
    names = [plan.server.name for plan in plans]
    steps = []
    for k, point in enumerate(order):
        shift = k % len(names)
        rotated = names[shift:] + names[:shift]
        wanted = {plan.server.name for plan in plans if point in plan.points}
        steps.append((point, [name for name in rotated if name in wanted]))
    return steps


Measure = Callable[[servers.Running, str, int, str], loadgen.LoadPoint]


def run(
    plans: list[Plan],
    measure: Measure,
    warm_up: Callable[[servers.Running, str], None],
    failures: list[str],
    after: Callable[[str, servers.Running], None] | None = None,
) -> list[loadgen.LoadPoint]:
    """Start every server, then `measure(running, name, clients, mix)` each point of each plan
    as `schedule` orders them, with `warm_up(running, name)` before a server's first point;
    `after(name, running)` once all points are done, while the servers still run. A server
    that fails to start or to answer is reported in `failures` and left out; the rest are
    measured. Points come back grouped by plan, in plan order."""
    by_name = {plan.server.name: plan for plan in plans}
    with contextlib.ExitStack() as stack:
        running: dict[str, servers.Running] = {}
        for plan in plans:
            name = plan.server.name
            print(f"[{name}] starting", flush=True)
            try:
                running[name] = stack.enter_context(plan.server.start())
            except (RuntimeError, TimeoutError, OSError) as exc:  # report it, measure the rest
                _failed(name, exc, failures)
        measured: dict[str, list[loadgen.LoadPoint]] = {name: [] for name in running}
        for (mix, clients), names in schedule([by_name[n] for n in running]):
            for name in names:
                if name not in running:
                    continue
                try:
                    if not measured[name]:
                        # Right before the first window, as when servers ran one at a time:
                        # BentoML's adaptive dispatcher learns its wait from the traffic it
                        # saw, and after the same 128-client burst one client got 99 req/s
                        # at once but 21 after a minute idle.
                        warm_up(running[name], name)
                    measured[name].append(measure(running[name], name, clients, mix))
                except (RuntimeError, TimeoutError, OSError) as exc:
                    _failed(name, exc, failures)
                    running.pop(name)
        if after is not None:
            for name, srv in running.items():
                after(name, srv)
    return [point for plan in plans for point in measured.get(plan.server.name, [])]


def _failed(name: str, exc: BaseException, failures: list[str]) -> None:
    print(f"[{name}] failed: {exc}", flush=True)
    failures.append(f"**{name} could not be measured**: {str(exc)[:300]}")


def warm_up_at(clients: int, model: str) -> Callable[[servers.Running, str], None]:
    """Every worker's first requests (lazy set-up, admission's capacity measurement) land
    before the first window, whichever worker that window's connections reach."""

    def warm(srv: servers.Running, name: str) -> None:
        asyncio.run(loadgen.measure(srv.url, name, clients, 2.0, "single", model, warmup_s=0))

    return warm
