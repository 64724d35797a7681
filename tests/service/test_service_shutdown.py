"""Graceful stop: a SIGTERM to `bentoml serve` (what Kubernetes sends) loses no accepted request."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from harness.live_server import LiveServer
from tests.conftest import MODELS_DIR, model_cards

CGAN = next(name for name, card in model_cards().items() if card.conditional)
REQUESTS = 16  # x 64 images: about a second of inference queued on this CPU


def test_sigterm_lets_the_requests_in_flight_finish() -> None:
    with LiveServer(models_dir=MODELS_DIR) as live:
        assert live.proc is not None

        def post(k: int) -> tuple[int, float]:
            body = {"model": CGAN, "n": 64, "seed": k}
            resp = requests.post(f"{live.url}/generate", json=body, timeout=60)
            return resp.status_code, time.monotonic()

        with ThreadPoolExecutor(REQUESTS) as pool:
            futures = [pool.submit(post, k) for k in range(REQUESTS)]
            time.sleep(0.3)  # every request is accepted and queued for an inference thread
            stopped_at = time.monotonic()
            os.kill(live.proc.pid, signal.SIGTERM)  # the arbiter only, as a pod's PID 1 gets it
            results = [f.result() for f in futures]
        assert [status for status, _ in results] == [200] * REQUESTS
        assert max(done for _, done in results) > stopped_at, "nothing was in flight at SIGTERM"
        assert live.proc.wait(30) == 0
