"""bench.sweep measures each load point on every server in turn, with real servers started
at once; a server that cannot start is reported and the others are still measured."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator

from bench import loadgen, servers, sweep


@contextlib.contextmanager
def never_starts(env: dict[str, str]) -> Iterator[servers.Running]:
    raise RuntimeError("port in use")
    yield  # pragma: no cover


def named(name: str) -> servers.Server:
    return servers.Server(name, "", never_starts)


POINTS = [("single", 1), ("single", 2), ("1-16", 1)]


def test_each_point_goes_to_every_server_that_wants_it_in_a_rotated_order() -> None:
    plans = [
        sweep.Plan(named("A"), POINTS),
        sweep.Plan(named("B"), POINTS),
        sweep.Plan(named("C"), [("single", 2)]),
    ]
    steps = sweep.schedule(plans)
    assert [point for point, _ in steps] == POINTS
    assert [names for _, names in steps] == [["A", "B"], ["B", "C", "A"], ["A", "B"]]
    # Four plans, four points each: every server opens exactly one point.
    four = [sweep.Plan(named(n), [*POINTS, ("single", 8)]) for n in "ABCD"]
    assert sorted(names[0] for _, names in sweep.schedule(four)) == ["A", "B", "C", "D"]


def test_real_servers_are_measured_interleaved_and_a_failed_start_is_reported() -> None:
    bare = next(s for s in servers.all_servers() if s.name == "bare")
    first, second = (dataclasses.replace(bare, name=name) for name in ("first", "second"))
    broken = named("broken")
    calls: list[tuple[str, int | str]] = []
    seen_after: list[str] = []

    def measure(srv: servers.Running, name: str, clients: int, mix: str) -> loadgen.LoadPoint:
        calls.append((name, clients))
        return asyncio.run(
            loadgen.measure(
                srv.url, name, clients, 0.4, mix, warmup_s=0.1, cpu_seconds=srv.cpu_seconds
            )
        )

    failures: list[str] = []
    points = [("single", 1), ("single", 4)]
    load = sweep.run(
        [sweep.Plan(first, points), sweep.Plan(broken, points), sweep.Plan(second, points)],
        measure,
        lambda srv, name: calls.append((name, "warm-up")),
        failures,
        after=lambda name, srv: seen_after.append(name),
    )
    assert len(failures) == 1 and "broken" in failures[0] and "port in use" in failures[0]
    # Interleaved: both servers at 1 client before either at 4, the order rotated; each
    # warmed up right before its first window.
    assert calls == [
        ("first", "warm-up"),
        ("first", 1),
        ("second", "warm-up"),
        ("second", 1),
        ("second", 4),
        ("first", 4),
    ]
    # Grouped by plan for the report, every window answered.
    assert [(p.server, p.clients) for p in load] == [
        ("first", 1),
        ("first", 4),
        ("second", 1),
        ("second", 4),
    ]
    assert all(p.requests > 0 and p.errors == 0 and p.server_cpu_ms for p in load)
    assert seen_after == ["first", "second"]
