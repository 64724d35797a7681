"""Graceful stop: a SIGTERM to `bentoml serve` (what Kubernetes sends) loses no accepted request."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from harness.live_server import LiveServer
from tests.conftest import MODELS_DIR, model_name

CGAN = model_name(conditional=True)
REQUESTS = 16  # x 64 images: about a second of inference queued on a small CPU
DEADLINE_S = 60.0


def generate_requests(metrics: str) -> tuple[float, float]:
    """(in progress, completed) /generate requests, from BentoML's own request metrics."""

    def total(name: str) -> float:
        pattern = rf'^{name}\{{[^}}]*endpoint="/generate"[^}}]*\}} ([0-9.e+]+)$'
        return sum(float(v) for v in re.findall(pattern, metrics, re.MULTILINE))

    return total("bentoml_service_request_in_progress"), total("bentoml_service_request_total")


def wait_until_accepted(url: str, count: int) -> float:
    """Poll /metrics until `count` requests were accepted; return how many are in flight."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        in_progress, done = generate_requests(requests.get(f"{url}/metrics", timeout=10).text)
        if in_progress + done >= count:
            return in_progress
        time.sleep(0.02)
    raise AssertionError(f"the server did not accept {count} requests in {DEADLINE_S:.0f} s")


def test_sigterm_lets_the_requests_in_flight_finish() -> None:
    # Admission control would shed part of this burst (503, by design); this test is about
    # the requests a server accepted, so its queue bound and start deadline are out of reach.
    roomy = {"GAN_MAX_QUEUED_IMAGES": "100000", "GAN_QUEUE_TIMEOUT_MS": "60000"}
    with LiveServer(models_dir=MODELS_DIR, env=roomy) as live:
        assert live.proc is not None

        def post(k: int) -> int:
            body = {"model": CGAN, "n": 64, "seed": k}
            return requests.post(f"{live.url}/generate", json=body, timeout=60).status_code

        with ThreadPoolExecutor(REQUESTS) as pool:
            futures = [pool.submit(post, k) for k in range(REQUESTS)]
            in_flight = wait_until_accepted(live.url, REQUESTS)
            os.kill(live.proc.pid, signal.SIGTERM)  # the arbiter only, as a pod's PID 1 gets it
            statuses = [f.result() for f in futures]
        assert in_flight > 0, "every request had finished before SIGTERM: nothing was tested"
        assert statuses == [200] * REQUESTS
        assert live.proc.wait(30) == 0
