"""Both batching paths: many clients, shared ONNX Runtime calls, unchanged pixels."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from harness.live_server import LiveServer
from tests.conftest import decode, max_diff, model_cards, model_name

pytestmark = pytest.mark.serve  # the servers come through request.getfixturevalue too

CARDS = model_cards()
CGAN = model_name(conditional=True, cards=CARDS)
CLIENTS = 32
ROUNDS = 4  # requests per client: 128 in all, past the client's old 100-request recycle point


def batch_histogram(server: LiveServer, model: str) -> tuple[float, float]:
    """(batches run, batches of exactly one image) from gan_batch_images."""
    text = requests.get(f"{server.url}/metrics", timeout=30).text

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)", text)
        return float(match.group(1)) if match else 0.0

    count = value(rf'gan_batch_images_count\{{model="{model}"\}}')
    ones = value(rf'gan_batch_images_bucket\{{le="1.0",model="{model}"\}}')
    return count, ones


@pytest.mark.parametrize("path", ["adaptive_server", "server"])
def test_32_concurrent_clients_no_errors_batched_and_batch_invariant(
    path: str, request: pytest.FixtureRequest, reference
) -> None:
    """`adaptive_server` batches through BentoML; `server` (in-process) through MicroBatcher."""
    adaptive_server: LiveServer = request.getfixturevalue(path)
    card = CARDS[CGAN]
    count_before, ones_before = batch_histogram(adaptive_server, CGAN)
    barrier = threading.Barrier(CLIENTS)

    def client(k: int) -> list[tuple[int, int, bytes]]:
        session = requests.Session()
        barrier.wait()  # start together so requests overlap
        out = []
        for r in range(ROUNDS):
            seed = 1000 + k * ROUNDS + r
            label = seed % card.num_classes
            resp = session.post(
                f"{adaptive_server.url}/generate",
                json={"model": CGAN, "seed": seed, "label": label},
                timeout=60,
            )
            out.append((seed, resp.status_code, resp.content))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [item for chunk in pool.map(client, range(CLIENTS)) for item in chunk]

    statuses = [status for _, status, _ in results]
    assert statuses.count(200) == len(results) == CLIENTS * ROUNDS, statuses

    count_after, ones_after = batch_histogram(adaptive_server, CGAN)
    batches, singles = count_after - count_before, ones_after - ones_before
    assert batches < CLIENTS * ROUNDS, "no request shared a batch"
    assert batches - singles >= 1, "no batch larger than one image"

    # Each response equals its own batch-1 reference, whatever shared its batch.
    for seed, _, body in results:
        expected = reference.from_seed(CGAN, seed, 1, labels=[seed % card.num_classes])
        assert max_diff(np.asarray(decode(body)), expected[0, 0]) <= 1


def test_adaptive_and_inprocess_paths_agree(
    adaptive_server: LiveServer, server: LiveServer
) -> None:
    body = {"model": CGAN, "n": 12, "seed": 5}
    a = decode(requests.post(f"{adaptive_server.url}/generate", json=body, timeout=30).content)
    b = decode(requests.post(f"{server.url}/generate", json=body, timeout=30).content)
    assert max_diff(np.asarray(a), np.asarray(b)) <= 1
    models = requests.get(f"{adaptive_server.url}/models", timeout=30).json()
    assert models["batching"] == "adaptive"
    assert all(m["provider"].endswith("ExecutionProvider") for m in models["models"])
