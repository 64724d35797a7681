"""Connections re-spread over API workers (service/connection_spread.py): the rule, the shared
board, and a real two-worker `bentoml serve` whose clients all landed on one worker."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

from bench.servers import connections_per_listener
from harness.live_server import LiveServer
from service.connection_spread import STALE_S, SpreadBoard, closes_due

CLIENTS = 8


def test_a_worker_closes_only_its_clear_excess_over_the_mean() -> None:
    assert closes_due(8, [8]) == 0  # the only worker
    assert closes_due(4, [4, 4]) == 0
    assert closes_due(5, [5, 3]) == 0  # within the margin: no churn
    assert closes_due(8, [8, 0]) == 4
    assert closes_due(0, [8, 0]) == 0
    assert closes_due(7, [7, 1, 0, 0]) == 5


def test_workers_see_each_others_slots_and_not_stale_ones(tmp_path: Path) -> None:
    path = tmp_path / "board.bin"
    first, second = SpreadBoard(path, 1), SpreadBoard(path, 2)
    first.publish(6, now=100.0)
    second.publish(2, now=100.5)
    assert sorted(first.live_counts(now=101.0)) == [2, 6]
    assert second.live_counts(now=100.0 + STALE_S + 0.1) == [2]  # the first went quiet


def _connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    return conn


def test_clients_piled_on_one_worker_are_spread_over_both() -> None:
    with LiveServer(env={"GAN_WORKERS": "2", "GAN_PROVIDERS": "cpu"}) as server:
        # Connected in one burst: the worker that wakes first accepts most or all of them.
        conns = [_connect(server.port) for _ in range(CLIENTS)]
        time.sleep(0.2)
        before = connections_per_listener(server.pid, server.port)
        closed = 0
        spread = before
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            for i, conn in enumerate(conns):
                conn.request("GET", "/livez")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                if (response.getheader("connection") or "").lower() == "close":
                    closed += 1
                    conn.close()
                    conns[i] = _connect(server.port)
            spread = connections_per_listener(server.pid, server.port)
            if closed and max(spread) <= CLIENTS * 3 // 4:
                break
        for conn in conns:
            conn.close()
    assert len(before) == 2 and sum(before) >= CLIENTS, before  # + the readiness probe
    if max(before) > CLIENTS * 3 // 4:  # piled up: the excess must have been closed
        assert closed > 0
    assert max(spread) <= CLIENTS * 3 // 4, f"before {before}, after {spread}, closed {closed}"
