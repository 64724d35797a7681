"""What a hostile or unlucky client meets, against a real `bentoml serve` on loopback: bounded
queues that shed with 503 + Retry-After, abandoned work dropped, limits at and one past each
bound, no 500 for any input, operator-readable logs, optional bearer auth."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from harness.live_server import LiveServer, free_port
from tests.conftest import MODELS_DIR, model_cards, model_name

CGAN = model_name(conditional=True)
DCGAN = model_name(conditional=False)
CARDS = model_cards()
PIXELS = 28 * 28  # both shipped models: 28x28 grey
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 30
PROBE_TIMEOUT = 3.0  # the Deployment's readiness timeout

PROBE_PORT = free_port()
# One API worker, one inference thread, one request per batch: queues fill predictably.
N = 48  # images per request in the load tests: the most GAN_MAX_OUTPUT_PIXELS allows here
TIGHT = {
    "GAN_WORKERS": "1",
    "GAN_BATCHES_IN_FLIGHT": "1",
    "GAN_MAX_BATCH_SIZE": "64",
    "GAN_MAX_QUEUED_IMAGES": str(20 * 48),  # 20 requests of N images
    "GAN_QUEUE_TIMEOUT_MS": "300",
    "GAN_MAX_BODY_BYTES": "4096",
    "GAN_BODY_TIMEOUT_S": "2",
    "GAN_HEADER_TIMEOUT_S": "2",
    "GAN_MAX_OUTPUT_PIXELS": str(48 * PIXELS),
    "GAN_API_TOKEN": f"{TOKEN},second-token",
    "GAN_PROBE_PORT": str(PROBE_PORT),
}


@pytest.fixture(scope="module")
def tight() -> Iterator[LiveServer]:
    with LiveServer(models_dir=MODELS_DIR, env=TIGHT) as live:
        yield live


@pytest.fixture(scope="module")
def tight_adaptive() -> Iterator[LiveServer]:
    env = {"GAN_BATCHING": "adaptive", "GAN_MAX_QUEUED_IMAGES": "256", "GAN_LOG_FORMAT": "json"}
    with LiveServer(models_dir=MODELS_DIR, env=env) as live:
        yield live


def post(url: str, route: str, body: object, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{url}{route}", json=body, headers=headers, timeout=TIMEOUT)


def rejected(url: str, reason: str, model: str = CGAN) -> float:
    """gan_rejected_requests_total{model, reason} from /metrics (0 before the first)."""
    text = requests.get(f"{url}/metrics", timeout=TIMEOUT).text
    pattern = r"^gan_rejected_requests_total\{[^}]*\} ([0-9.e+]+)$"
    total = 0.0
    for line in text.splitlines():
        if f'model="{model}"' in line and f'reason="{reason}"' in line:
            match = re.match(pattern, line)
            total += float(match.group(1)) if match else 0.0
    return total


def generated(url: str, model: str = CGAN) -> float:
    text = requests.get(f"{url}/metrics", timeout=TIMEOUT).text
    found = re.search(rf'^gan_images_generated_total\{{model="{model}"\}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def burst(url: str, count: int, body: dict, headers: dict | None = None) -> list[requests.Response]:
    """`count` concurrent POST /generate, while /readyz is probed; returns the answers."""
    probes: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            r = requests.get(f"{url}/readyz", timeout=PROBE_TIMEOUT)
            assert r.status_code == 200
            probes.append(time.monotonic() - started)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        with ThreadPoolExecutor(count) as pool:
            answers = list(pool.map(lambda _: post(url, "/generate", body, headers), range(count)))
    finally:
        done.set()
        prober.join()
    assert probes, "no readiness probe completed during the burst"
    return answers


def assert_overloaded(r: requests.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert body["error"].startswith("overloaded"), body
    assert body["detail"][0]["type"].startswith("overloaded."), body


# --- bounded work --------------------------------------------------------------------------


def test_in_process_overload_is_shed_at_once_with_retry_after(tight: LiveServer) -> None:
    def shed() -> float:
        return rejected(tight.url, "queue_full") + rejected(tight.url, "deadline")

    before, full_before = shed(), rejected(tight.url, "queue_full")
    answers = burst(tight.url, 48, {"model": CGAN, "n": N, "seed": 1}, AUTH)
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] >= 10 and statuses[200] >= 1, statuses
    for r in answers:
        if r.status_code == 503:
            assert_overloaded(r)
    assert shed() - before == statuses[503]  # every one counted, by its reason
    assert rejected(tight.url, "queue_full") > full_before  # the bound itself shed some


def test_probe_port_answers_off_the_event_loop_during_a_flood(tight: LiveServer) -> None:
    """GAN_PROBE_PORT: /livez and /readyz from a thread of their own, fast while the API
    port's loop is busy with a burst; other paths are 404 there."""
    probe = f"http://127.0.0.1:{PROBE_PORT}"
    assert requests.get(f"{probe}/nope", timeout=PROBE_TIMEOUT).status_code == 404
    answers: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for path in ("/readyz", "/livez"):
                answers.append(requests.get(f"{probe}{path}", timeout=PROBE_TIMEOUT).status_code)
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        burst(tight.url, 48, {"model": CGAN, "n": N, "seed": 3}, AUTH)
    finally:
        done.set()
        poller.join()
    assert answers and set(answers) == {200}, Counter(answers)


def test_a_request_that_cannot_start_in_time_gets_503(tight: LiveServer) -> None:
    """More queued work than GAN_QUEUE_TIMEOUT_MS (300 ms) of batches: the tail gets 503.
    The burst is sized from one batch's time here, so a faster machine gets a longer one."""
    started = time.monotonic()
    assert post(tight.url, "/generate", {"model": CGAN, "n": N}, AUTH).status_code == 200
    batch_s = time.monotonic() - started
    count = min(30, math.ceil(0.3 / batch_s) + 4)
    before = rejected(tight.url, "deadline")
    answers = burst(tight.url, count, {"model": CGAN, "n": N}, AUTH)
    late = [r for r in answers if r.status_code == 503]
    assert late, f"{count} requests of {batch_s:.3f} s each all started within 300 ms"
    for r in late:
        assert_overloaded(r)
    assert rejected(tight.url, "deadline") - before >= 1


def raw_request(url: str, body: dict, token: str = TOKEN) -> socket.socket:
    """Send one POST /generate on a raw socket and return it unread."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def test_requests_whose_clients_left_are_never_computed(tight: LiveServer) -> None:
    count = 16
    before_gone, before_images = rejected(tight.url, "client_gone"), generated(tight.url)
    socks = [raw_request(tight.url, {"model": CGAN, "n": N, "seed": k}) for k in range(count)]
    time.sleep(0.1)  # one batch is running, the rest queue behind it
    for sock in socks:
        sock.close()
    time.sleep(1.0)
    gone = rejected(tight.url, "client_gone") - before_gone
    images = generated(tight.url) - before_images
    assert gone >= 1, "no abandoned request was dropped"
    assert images <= (count - gone) * N, (images, gone)
    # A lone request is served at once: no abandoned work is left in front of it.
    assert post(tight.url, "/generate", {"model": CGAN, "seed": 1}, AUTH).status_code == 200


def test_adaptive_overload_is_shed_with_retry_after_and_no_tracebacks(
    tight_adaptive: LiveServer,
) -> None:
    answers = burst(tight_adaptive.url, 24, {"model": CGAN, "n": 64, "seed": 2})
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] >= 8 and statuses[200] >= 1, statuses
    for r in answers:
        if r.status_code == 503:
            assert_overloaded(r)
    assert rejected(tight_adaptive.url, "queue_full") >= 8
    assert "Traceback" not in tight_adaptive.output()


# --- limits: at the limit and one past --------------------------------------------------------


def padded(body: dict, size: int) -> bytes:
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


def send(url: str, data: bytes, route: str = "/generate", **headers: str) -> requests.Response:
    headers = {"Content-Type": "application/json", **AUTH, **headers}
    return requests.post(f"{url}{route}", data=data, headers=headers, timeout=TIMEOUT)


def test_body_size_limit(tight: LiveServer) -> None:
    assert send(tight.url, padded({"model": DCGAN}, 4096)).status_code == 200
    r = send(tight.url, padded({"model": DCGAN}, 4097))
    assert r.status_code == 413 and r.json()["detail"][0]["loc"] == ["body"]
    # Chunked, no Content-Length: counted while reading.
    chunks = (padded({"model": DCGAN}, 4097)[i : i + 1000] for i in range(0, 4097, 1000))
    r = requests.post(
        f"{tight.url}/generate",
        data=chunks,
        headers={"Content-Type": "application/json", **AUTH},
        timeout=TIMEOUT,
    )
    assert r.status_code == 413


def test_error_bodies_do_not_echo_unbounded_input(tight: LiveServer) -> None:
    name = "m" * 4000
    r = send(tight.url, json.dumps({"model": name}).encode())
    assert r.status_code == 404 and len(r.content) < 1000, len(r.content)
    r = send(tight.url, json.dumps({"model": CGAN, "label": "x" * 4000}).encode())
    assert r.status_code == 422 and len(r.content) < 1000, len(r.content)


def test_output_pixel_limit(tight: LiveServer) -> None:
    """GAN_MAX_OUTPUT_PIXELS = 48 images of 28x28: 48 pass, 49 are a 422 naming the field."""
    assert post(tight.url, "/generate", {"model": DCGAN, "n": N}, AUTH).status_code == 200
    r = post(tight.url, "/generate", {"model": DCGAN, "n": N + 1}, AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["n"], r.text
    ends = {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}, "format": "gif"}
    assert post(tight.url, "/interpolate", {**ends, "steps": N}, AUTH).status_code == 200
    r = post(tight.url, "/interpolate", {**ends, "steps": N + 1}, AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["steps"], r.text


def test_slow_request_heads_are_closed(tight: LiveServer) -> None:
    """GAN_HEADER_TIMEOUT_S=2: heads dripping at 1 byte every 0.5 s are cut off; a head that
    completes at about 1 s is served."""
    host, port = tight.url.removeprefix("http://").split(":")
    head = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    slow = [socket.create_connection((host, int(port))) for _ in range(20)]
    for sock in slow:
        sock.settimeout(0.05)
    closed: set[int] = set()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 6 and len(closed) < len(slow):
        for i, sock in enumerate(slow):
            if i in closed:
                continue
            try:
                sock.sendall(head[sent : sent + 1])
                if sock.recv(1) == b"":
                    closed.add(i)
            except TimeoutError:
                pass
            except OSError:
                closed.add(i)
        sent += 1
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    assert len(closed) == len(slow), f"{len(closed)} of {len(slow)} closed in {elapsed:.1f} s"
    # Within the limit: the head completes after about a second and is answered.
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"GET /livez HTTP/1.1\r\n")
    time.sleep(1.0)
    sock.sendall(b"Host: x\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(64).startswith(b"HTTP/1.1 200")
    sock.close()


def test_a_body_that_does_not_arrive_in_time_is_a_408(tight: LiveServer) -> None:
    host, port = tight.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{".encode()
    )
    sock.settimeout(10)
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


# --- exposure -------------------------------------------------------------------------------


def test_bearer_token_guards_generation_but_not_health_metrics_or_docs(tight: LiveServer) -> None:
    body = {"model": DCGAN}
    ends = {"model": DCGAN, "start": {"seed": 1}, "end": {"seed": 2}}
    for route, payload in (("/generate", body), ("/samples", body), ("/interpolate", ends)):
        r = post(tight.url, route, payload)
        assert r.status_code == 401, (route, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["detail"][0]["loc"] == ["authorization"]
        bad = post(tight.url, route, payload, {"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        assert post(tight.url, route, payload, AUTH).status_code == 200
    second = {"Authorization": "Bearer second-token"}
    assert post(tight.url, "/generate", body, second).status_code == 200
    assert requests.get(f"{tight.url}/models", timeout=TIMEOUT).status_code == 401
    assert requests.get(f"{tight.url}/models", headers=AUTH, timeout=TIMEOUT).status_code == 200
    for path in ("/livez", "/readyz", "/metrics", "/docs.json", "/"):
        assert requests.get(f"{tight.url}{path}", timeout=TIMEOUT).status_code == 200, path


ROUTES_AND_BODIES = [
    ("/generate", {"model": CGAN}),
    ("/samples", {"model": CGAN}),
    ("/interpolate", {"model": CGAN, "start": {"seed": 1, "label": 0}, "end": {"seed": 2}}),
]


@pytest.mark.parametrize(("route", "body"), ROUTES_AND_BODIES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", None, "multipart/form-data", "application/x-www-form-urlencoded"]
)
def test_only_json_is_accepted(
    server: LiveServer, route: str, body: dict, content_type: str | None
) -> None:
    """A browser may send these cross-origin without a preflight: they must not run."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = requests.post(
        f"{server.url}{route}", data=json.dumps(body), headers=headers, timeout=TIMEOUT
    )
    assert r.status_code == 415, r.text
    assert r.json()["detail"][0]["loc"] == ["content-type"]
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert requests.post(
        f"{server.url}{route}", data=json.dumps(body), headers=charset, timeout=TIMEOUT
    ).ok


# --- inputs: never a 500 ----------------------------------------------------------------------


BAD_LABELS = ["²", {"²": 1}, "0" * 5000, "٣", "1" * 7, {"Sneaker": 0}, {"Sneaker": 1e300}]


@pytest.mark.parametrize("label", BAD_LABELS, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("route", ["/generate", "/samples", "/interpolate"])
def test_odd_labels_are_4xx_naming_label(server: LiveServer, route: str, label: object) -> None:
    if route == "/interpolate":
        body = {"model": CGAN, "start": {"seed": 1, "label": label}, "end": {"seed": 2}}
    else:
        body = {"model": CGAN, "label": label}
    r = post(server.url, route, body)
    assert r.status_code in (400, 422), r.text
    assert "label" in r.json()["error"]


@pytest.mark.parametrize("route", ["/generate", "/samples"])
def test_an_empty_z_is_a_400(server: LiveServer, route: str) -> None:
    r = post(server.url, route, {"model": DCGAN, "z": []})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["z"], r.text


def test_latents_at_and_past_the_float32_range(server: LiveServer) -> None:
    dim = CARDS[DCGAN].latent_dim
    at = post(server.url, "/generate", {"model": DCGAN, "z": [[3.4028234663852886e38] * dim]})
    assert at.status_code == 200, at.text
    for value in (3.5e38, 1e39):
        r = post(server.url, "/generate", {"model": DCGAN, "z": [[value] * dim]})
        assert r.status_code == 400, r.text
        assert r.json()["detail"][0]["loc"][0] == "z"
    ends = {"model": DCGAN, "start": {"z": [1e39] * dim}, "end": {"seed": 2}}
    r = post(server.url, "/interpolate", ends)
    assert r.status_code == 400 and r.json()["detail"][0]["loc"][:2] == ["start", "z"], r.text


def test_json_types_are_strict(server: LiveServer) -> None:
    odd = [{"seed": False}, {"n": "2"}, {"n": True}, {"truncation": "0.5"}, {"n": [1]}]
    odd += [{"model": [None, None]}, {"model": {"a": 1}}, {"model": 5}, {"z": 5}, [1], "x"]
    for route in ("/generate", "/samples", "/interpolate"):
        for body in odd:  # the intake middleware reads the raw body first: none may hang it
            r = requests.post(f"{server.url}{route}", json=body, timeout=10)
            assert r.status_code == 400, (route, body, r.text)


def test_unknown_routes_and_methods_answer_in_the_error_shape(server: LiveServer) -> None:
    r = requests.get(f"{server.url}/nowhere", timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["detail"][0]["type"] == "not_found"
    r = requests.put(f"{server.url}/models", timeout=TIMEOUT)
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    assert r.json()["error"]


# --- logs -------------------------------------------------------------------------------------


def test_a_4xx_is_one_log_line_naming_the_field_without_traceback(tight: LiveServer) -> None:
    marker = 40_000 + os.getpid() % 1000
    r = post(tight.url, "/generate", {"n": marker}, AUTH)
    assert r.status_code == 400
    request_id = r.headers["x-bentoml-request-id"]
    time.sleep(0.5)
    log = tight.output()
    lines = [line for line in log.splitlines() if request_id in line]
    assert len(lines) == 1, lines
    assert "POST /generate 400 field=n" in lines[0]
    assert "Traceback" not in log


def test_json_logs_carry_route_status_and_field(tight_adaptive: LiveServer) -> None:
    r = post(tight_adaptive.url, "/samples", {"model": CGAN, "label": "nope"})
    assert r.status_code == 422
    time.sleep(0.5)
    entries = []
    for line in tight_adaptive.output().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    access = [e for e in entries if e.get("route") == "/samples" and e.get("status") == 422]
    assert access and access[-1]["field"] == "label", access
    assert access[-1]["request_id"] == r.headers["x-bentoml-request-id"]


def test_a_killed_worker_is_logged_when_it_is_replaced(tight_adaptive: LiveServer) -> None:
    """kill -9 of the API worker: the batching service keeps running, the replacement says
    whose place it took, and gan_worker_restarts_total counts it."""
    arbiter = psutil.Process(tight_adaptive.pid)
    workers = [
        p
        for p in arbiter.children(recursive=True)
        if "_bentoml_impl.worker.service" in " ".join(p.cmdline())
        and "gan_generator" not in p.cmdline()
    ]
    assert workers, [p.cmdline() for p in arbiter.children(recursive=True)]
    victim = workers[0].pid
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if f"its previous process {victim} died" in tight_adaptive.output():
            break
        time.sleep(0.5)
    else:
        raise AssertionError(tight_adaptive.output()[-3000:])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if post(tight_adaptive.url, "/generate", {"model": DCGAN}).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    metrics = requests.get(f"{tight_adaptive.url}/metrics", timeout=TIMEOUT).text
    assert re.search(r'^gan_worker_restarts_total\{role="api"\} 1\.0$', metrics, re.M), metrics
