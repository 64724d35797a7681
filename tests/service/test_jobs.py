"""Bulk generation jobs against a real `bentoml serve`: submit, progress, fetch, cancel,
reproducibility, limits, a clean failure and a restart.

Images of a job are compared with what `/generate` answers for seed + i and the image's
label: the contract that lets a client re-create any image of a data set with one request.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from harness.live_server import LiveServer
from tests.conftest import MODELS_DIR, decode, model_name

pytestmark = pytest.mark.serve

CGAN = model_name(conditional=True)
DCGAN = model_name(conditional=False)
# Small chunks make progress visible and a cancel land mid-job on a small job.
LIMITS = {
    "GAN_JOBS_CHUNK_IMAGES": "64",
    "GAN_JOBS_MAX_IMAGES": "20000",
    "GAN_JOBS_MAX_ACTIVE": "3",
    "GAN_JOBS_MAX_STORAGE_BYTES": str(40 * 1024 * 1024),
}
FINAL = ("completed", "failed", "canceled", "interrupted", "expired")


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def server(jobs_dir: Path) -> Iterator[LiveServer]:
    with LiveServer(models_dir=MODELS_DIR, env={"GAN_JOBS_DIR": str(jobs_dir), **LIMITS}) as live:
        yield live


def submit(server: LiveServer, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/jobs/submit", json=body, timeout=30)


def status(server: LiveServer, task_id: str) -> dict:
    r = requests.get(f"{server.url}/jobs/status", params={"task_id": task_id}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait(server: LiveServer, task_id: str, until: tuple[str, ...] = FINAL, timeout: float = 180):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(server, task_id)
        seen.append(st)
        if st["status"] in until:
            return st, seen
        time.sleep(0.2)
    raise AssertionError(f"job {task_id} not in {until} after {timeout} s: {seen[-1]}")


def fetch(server: LiveServer, task_id: str) -> requests.Response:
    return requests.get(f"{server.url}/jobs/get", params={"task_id": task_id}, timeout=60)


def cancel(server: LiveServer, task_id: str) -> requests.Response:
    return requests.put(f"{server.url}/jobs/cancel", params={"task_id": task_id}, timeout=30)


def generated(server: LiveServer, model: str, seed: int, label: str | None) -> np.ndarray:
    """What /generate answers for one image: [H, W, C] uint8."""
    body = {"model": model, "n": 1, "seed": seed}
    if label is not None:
        body["label"] = label
    r = requests.post(f"{server.url}/generate", json=body, timeout=30)
    assert r.status_code == 200, r.text
    pixels = np.asarray(decode(r.content))
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def test_npz_job_progress_fetch_and_images_match_generate(server: LiveServer) -> None:
    r = submit(server, {"model": CGAN, "counts": {"Bag": 100, "Sneaker": 150}, "seed": 11})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    final, seen = wait(server, task_id)
    assert final["status"] == "completed", final
    done = [s["done"] for s in seen]
    assert done == sorted(done) and final["done"] == final["total"] == 250
    assert final["images_per_s"] > 0 and final["sha256"] and final["expires_at"]
    running = [s for s in seen if s["status"] == "in_progress" and 0 < s["done"] < 250]
    assert all(s["eta_s"] is not None and s["eta_s"] >= 0 for s in running)

    body = fetch(server, task_id)
    assert body.status_code == 200
    assert len(body.content) == final["result_bytes"]
    assert hashlib.sha256(body.content).hexdigest() == final["sha256"] == body.headers["x-sha256"]
    data = np.load(io.BytesIO(body.content))
    names = list(data["class_names"])
    images, labels, seeds = data["images"], data["labels"], data["seeds"]
    assert images.dtype == np.uint8 and images.shape[0] == 250 and images.ndim == 4
    # Blocks in class-index order, whatever order the request named them in.
    first, second = sorted([names.index("Bag"), names.index("Sneaker")])
    counts = {names.index("Bag"): 100, names.index("Sneaker"): 150}
    assert list(labels[: counts[first]]) == [first] * counts[first]
    assert list(labels[counts[first] :]) == [second] * counts[second]
    assert list(seeds) == list(range(11, 11 + 250))
    for i in (0, counts[first] - 1, counts[first], 249):
        expected = generated(server, CGAN, int(seeds[i]), names[labels[i]])
        assert np.array_equal(images[i], expected), f"image {i} differs from /generate"


def test_same_job_gives_the_same_bytes_and_tar_matches_generate(server: LiveServer) -> None:
    body = {"model": DCGAN, "total": 70, "seed": 4242, "format": "tar", "truncation": 0.8}
    first = submit(server, body).json()["task_id"]
    done_first, _ = wait(server, first)
    again = requests.post(f"{server.url}/jobs/retry", params={"task_id": first}, timeout=30)
    assert again.status_code == 200, again.text
    done_again, _ = wait(server, again.json()["task_id"])
    assert done_first["status"] == done_again["status"] == "completed"
    a, b = fetch(server, first).content, fetch(server, again.json()["task_id"]).content
    assert a == b and done_first["sha256"] == done_again["sha256"]

    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        members = tar.getnames()
        manifest = tar.extractfile("manifest.csv").read().decode()
        pngs = {i: tar.extractfile(members[1 + i]).read() for i in (0, 69)}
    assert members[0] == "manifest.csv" and len(members) == 71
    rows = list(csv.DictReader(io.StringIO(manifest)))
    assert [r["file"] for r in rows] == members[1:]
    assert [r["seed"] for r in rows] == [str(4242 + i) for i in range(70)]
    assert {r["label"] for r in rows} == {""}  # unconditional
    for i, data in pngs.items():
        png = np.asarray(decode(data))
        served = requests.post(
            f"{server.url}/generate",
            json={"model": DCGAN, "seed": 4242 + i, "truncation": 0.8},
            timeout=30,
        )
        assert np.array_equal(png, np.asarray(decode(served.content)))


def test_total_with_mix_splits_by_largest_remainder(server: LiveServer) -> None:
    r = submit(server, {"model": CGAN, "total": 10, "mix": {"Bag": 2, "Sandal": 1}, "seed": 3})
    final, _ = wait(server, r.json()["task_id"])
    data = np.load(io.BytesIO(fetch(server, final["task_id"]).content))
    names = list(data["class_names"])
    classes, counts = np.unique(data["labels"], return_counts=True)
    got = {names[k]: int(c) for k, c in zip(classes, counts, strict=True)}
    assert got == {"Bag": 7, "Sandal": 3}


def test_cancel_stops_a_running_job_and_leaves_no_file(server: LiveServer, jobs_dir: Path) -> None:
    task_id = submit(server, {"model": CGAN, "total": 20000, "seed": 1}).json()["task_id"]
    deadline = time.monotonic() + 120
    while status(server, task_id)["done"] == 0:
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.2)
    r = cancel(server, task_id)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    time.sleep(2.0)  # the runner reads the cancel back at its next progress report
    after = status(server, task_id)
    assert after["status"] == "canceled" and after["done"] < 20000
    gone = fetch(server, task_id)
    assert gone.status_code == 409 and "canceled" in gone.json()["error"]
    assert not list((jobs_dir / "results").glob(f"*{task_id}*"))


def test_bodyless_cancel_and_retry_pass_and_a_text_body_gets_415(server: LiveServer) -> None:
    # BentoML's task client sends cancel and retry with no body and no content type.
    first = submit(server, {"model": DCGAN, "total": 10, "seed": 5}).json()["task_id"]
    wait(server, first)
    url = f"{server.url}/jobs"
    bare = requests.post(f"{url}/retry", params={"task_id": first}, timeout=30)
    assert bare.status_code == 200, bare.text
    again = bare.json()["task_id"]
    stopped = requests.put(f"{url}/cancel", params={"task_id": again}, timeout=30)
    assert stopped.status_code == 200 and stopped.json()["task_id"] == again, stopped.text
    wait(server, again)
    text = {"data": "{}", "headers": {"content-type": "text/plain"}, "timeout": 30}
    for method, route in (("PUT", "cancel"), ("POST", "retry"), ("POST", "submit")):
        r = requests.request(method, f"{url}/{route}", params={"task_id": first}, **text)
        assert r.status_code == 415 and r.json()["error"].startswith("content-type"), r.text


def test_bad_submissions_get_a_4xx_naming_the_field(server: LiveServer) -> None:
    cases = [
        ({"model": CGAN, "total": 20001}, 422, "total"),
        ({"model": CGAN, "counts": {"Bag": 15000, "Coat": 5001}}, 422, "counts"),
        ({"model": DCGAN, "counts": {"Bag": 1}}, 422, "counts"),
        ({"model": CGAN, "counts": {"Shoe": 1}}, 422, "counts"),
        ({"model": CGAN, "counts": {"Bag": 1, "bag": 2}}, 422, "counts"),
        ({"model": CGAN, "total": 5, "mix": {"Hat": 1}}, 422, "mix"),
        ({"model": CGAN, "total": 10, "seed": 2**32 - 5}, 422, "seed"),
        ({"model": "nope", "total": 1}, 404, "model"),
        ({"model": CGAN, "total": 0}, 400, "total"),
        ({"model": CGAN, "total": 5, "format": "zip"}, 400, "format"),
        ({"model": CGAN, "total": 5, "size": 3}, 400, "size"),
        ({"model": CGAN}, 400, "body"),
    ]
    for body, code, field in cases:
        r = submit(server, body)
        assert r.status_code == code, (body, r.status_code, r.text)
        assert r.json()["error"].startswith(f"{field}:"), (body, r.text)
    r = requests.get(f"{server.url}/jobs/status", timeout=30)
    assert r.status_code == 400 and r.json()["error"].startswith("task_id:")
    r = requests.get(f"{server.url}/jobs/status", params={"task_id": "nope"}, timeout=30)
    assert r.status_code == 404 and r.json()["error"].startswith("task_id:")


def test_storage_and_active_job_limits(server: LiveServer) -> None:
    # 40 MiB cap: 20,000 PNGs in a tar are bounded at ~1.3 KB each, more than the cap.
    r = submit(server, {"model": CGAN, "total": 20000, "format": "tar"})
    assert r.status_code == 422 and "GAN_JOBS_MAX_STORAGE_BYTES" in r.json()["error"]
    ids = []
    try:
        for _ in range(3):
            r = submit(server, {"model": CGAN, "total": 5000, "seed": 5})
            assert r.status_code == 200, r.text
            ids.append(r.json()["task_id"])
        r = submit(server, {"model": CGAN, "total": 10})
        assert r.status_code == 429 and r.headers["retry-after"]
        assert r.json()["error"].startswith("jobs:") and "GAN_JOBS_MAX_ACTIVE" in r.json()["error"]
    finally:
        for task_id in ids:
            cancel(server, task_id)
    assert submit(server, {"model": CGAN, "total": 10}).status_code == 200


def test_fetch_before_completion_is_a_4xx(server: LiveServer) -> None:
    task_id = submit(server, {"model": CGAN, "total": 20000, "seed": 9}).json()["task_id"]
    try:
        r = fetch(server, task_id)
        assert r.status_code == 400 and r.json()["error"].startswith("task_id:")
    finally:
        cancel(server, task_id)


def test_unwritable_results_folder_fails_the_job_cleanly(tmp_path: Path) -> None:
    blocked = tmp_path / "results"
    blocked.write_text("a file where the results folder should be")
    env = {"GAN_JOBS_DIR": str(tmp_path / "state"), "GAN_JOBS_RESULTS_DIR": str(blocked)}
    with LiveServer(models_dir=MODELS_DIR, env=env) as live:
        task_id = submit(live, {"model": CGAN, "total": 20, "seed": 1}).json()["task_id"]
        final, _ = wait(live, task_id)
        assert final["status"] == "failed", final
        assert str(blocked) in final["error"] and final["result_bytes"] is None
        r = fetch(live, task_id)
        assert r.status_code == 409 and "failed" in r.json()["error"]
        # Interactive traffic is unaffected.
        assert requests.post(f"{live.url}/generate", json={"seed": 1}, timeout=30).ok


def test_restart_marks_a_running_job_interrupted_and_keeps_finished_ones(tmp_path: Path) -> None:
    env = {"GAN_JOBS_DIR": str(tmp_path), "GAN_JOBS_CHUNK_IMAGES": "64"}
    with LiveServer(models_dir=MODELS_DIR, env=env) as live:
        small = submit(live, {"model": DCGAN, "total": 30, "seed": 2}).json()["task_id"]
        finished, _ = wait(live, small)
        running = submit(live, {"model": CGAN, "total": 200000, "seed": 2}).json()["task_id"]
        wait(live, running, until=("in_progress",))
    with LiveServer(models_dir=MODELS_DIR, env=env) as again:
        after, _ = wait(again, running, until=FINAL, timeout=60)
        assert after["status"] == "interrupted" and "retry" in after["error"]
        assert status(again, small)["sha256"] == finished["sha256"]
        assert fetch(again, small).status_code == 200
        assert not list((tmp_path / "results").glob(".*.part"))


def test_results_expire_after_their_time_to_live(tmp_path: Path) -> None:
    env = {"GAN_JOBS_DIR": str(tmp_path), "GAN_JOBS_TTL_S": "2"}
    with LiveServer(models_dir=MODELS_DIR, env=env) as live:
        task_id = submit(live, {"model": DCGAN, "total": 10, "seed": 1}).json()["task_id"]
        wait(live, task_id, until=("completed",))
        assert (tmp_path / "results" / f"{task_id}.npz").is_file()
        expired, _ = wait(live, task_id, until=("expired",), timeout=30)
        assert "GAN_JOBS_TTL_S" in expired["error"]
        r = fetch(live, task_id)
        assert r.status_code == 410 and r.json()["error"].startswith("task_id:")
        assert not list((tmp_path / "results").iterdir())
