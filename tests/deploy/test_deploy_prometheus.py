"""Every dashboard panel's PromQL, evaluated by a real Prometheus scraping a live server.

Debian's `prometheus` runs on 127.0.0.1 and scrapes a real `bentoml serve` every second
through the shipped scrape job's relabel rules, with the shipped alert rules loaded; once per
batching mode (adaptive, as on the GPU overlay; in-process, as on the CPU overlay). A bounded
burst of requests hits every endpoint, then each query from the committed dashboard JSON,
its variables set to the scraped pod, goes through /api/v1/query and must return sane data,
or be one of the panels that say in their description why they may be empty.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness import MODELS_DIR, REPO_ROOT
from harness.live_server import LiveServer, free_port

ROOT = REPO_ROOT
DASHBOARD = ROOT / "k8s" / "grafana" / "gan-serving-dashboard.json"
SCRAPE_CONFIG = ROOT / "k8s" / "prometheus" / "scrape-config.yaml"
ALERT_RULES = ROOT / "k8s" / "prometheus" / "alerts.rules.yaml"
# Grafana's $__rate_interval is at least four scrape intervals; a minute also covers the
# whole burst, so an instant query right after it sees every request.
RATE_INTERVAL = "1m"
ROUNDS = 3

# What Kubernetes service discovery would attach to the pod (role: pod), so the shipped
# relabel rules run unchanged. A decoy pod of another app must be dropped by them.
POD_META = {
    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "gan-serving",
    "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
    "__meta_kubernetes_pod_container_port_name": "http",
    "__meta_kubernetes_namespace": "test-ns",
    "__meta_kubernetes_pod_name": "gan-serving-0",
}
DECOY_META = {**POD_META, "__meta_kubernetes_pod_label_app_kubernetes_io_name": "other-app"}
# The dashboard's variables as a user picks this pod (`model` left at All, Grafana's .*).
VARIABLES = {
    "$namespace": POD_META["__meta_kubernetes_namespace"],
    "$pod": POD_META["__meta_kubernetes_pod_name"],
    "$model": ".*",
}
# Panels that may rightly show nothing, per batching mode; their descriptions say why.
MAY_BE_EMPTY = {
    "adaptive": {"Rejected requests by reason"},  # nothing is shed below overload
    "inprocess": {
        "Rejected requests by reason",
        "Requests merged per batch (adaptive batching)",  # BentoML's batcher is not in use
    },
}
MODES = ("adaptive", "inprocess")


def prometheus_config(target: str, decoy: str) -> dict[str, Any]:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    job.pop("kubernetes_sd_configs")  # Debian's build has no Kubernetes SD
    job["static_configs"] = [
        {"targets": [target], "labels": POD_META},
        {"targets": [decoy], "labels": DECOY_META},
    ]
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERT_RULES)]  # as README says for clusters without the operator
    return config


@contextmanager
def running_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: `make system-deps` installs Debian's package"
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), 30, "prometheus ready", proc)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if check():
            return
        time.sleep(0.25)
    raise TimeoutError(f"timed out waiting for {what}")


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    assert body["data"]["resultType"] == "vector"
    return body["data"]["result"]


def scalar(prom: str, expr: str) -> float:
    result = query(prom, expr)
    return float(result[0]["value"][1]) if result else math.nan


# (method, path, JSON body, expected status): every endpoint, good and bad input.
CALLS: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("GET", "/models", None, 200),
    ("POST", "/generate", {"model": "fashion-dcgan", "n": 8, "seed": 1}, 200),
    ("POST", "/generate", {"model": "fashion-cgan", "n": 4, "seed": 2, "label": "Sneaker"}, 200),
    ("POST", "/samples", {"model": "fashion-cgan", "n": 3, "seed": 3}, 200),
    ("POST", "/samples", {"model": "fashion-dcgan", "n": 2, "seed": 4, "format": "jpeg"}, 200),
    (
        "POST",
        "/interpolate",
        {"model": "fashion-dcgan", "start": {"seed": 1}, "end": {"seed": 2}, "steps": 4},
        200,
    ),
    (
        "POST",
        "/interpolate",
        {
            "model": "fashion-cgan",
            "start": {"seed": 1, "label": "Bag"},
            "end": {"seed": 2, "label": "Sandal"},
            "steps": 5,
            "format": "gif",
        },
        200,
    ),
    ("POST", "/generate", {"model": "fashion-dcgan", "n": 0}, 400),
    ("POST", "/samples", {"model": "no-such-model", "n": 1}, 404),
]


def drive_burst(url: str, rounds: int) -> int:
    """`rounds` x CALLS requests from 4 threads, each answered as expected; returns the count."""

    def call(spec: tuple[str, str, dict[str, Any] | None, int]) -> int:
        method, path, body, _ = spec
        return requests.request(method, url + path, json=body, timeout=30).status_code

    specs = CALLS * rounds
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(call, specs))
    mismatched = [(s[0], s[1], s[3], c) for s, c in zip(specs, codes, strict=True) if c != s[3]]
    assert not mismatched, f"(method, path, expected, got): {mismatched}"
    return len(codes)


def fill(expr: str) -> str:
    """Grafana's variables, as it would substitute them for the scraped pod."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def panel_queries() -> list[tuple[str, str, str]]:
    """(panel title, legend, PromQL with Grafana's variables filled in) for every target."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], t["legendFormat"], fill(t["expr"]))
        for panel in dashboard["panels"]
        for t in panel["targets"]
    ]


def variable_values(prom: str) -> dict[str, list[str]]:
    """Each dashboard variable's `label_values(selector, label)`, through Prometheus's API."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]).groups()
        resp = requests.get(
            f"{prom}/api/v1/label/{label}/values", params={"match[]": fill(selector)}, timeout=10
        )
        assert resp.status_code == 200, resp.text
        out[variable["name"]] = resp.json()["data"]
    return out


def check_panel(title: str, legend: str, series: list[dict[str, Any]], mode: str) -> None:
    """Sanity of one target's result, by what the panel shows."""
    if title.startswith("Latency"):
        # Endpoints the burst never called have no requests in the window: no quantile (NaN).
        called = {path for _, path, _, _ in CALLS}
        assert called <= {s["metric"]["endpoint"] for s in series}, series
        series = [s for s in series if s["metric"]["endpoint"] in called]
    values = {json.dumps(s["metric"], sort_keys=True): float(s["value"][1]) for s in series}
    if title in MAY_BE_EMPTY[mode] and not values:
        return
    if title == "Rejected requests by reason":  # present: only clients that left, if any
        assert {s["metric"]["reason"] for s in series} <= {"client_gone"}, series
    assert values, f"{title} / {legend}: no data"
    assert all(math.isfinite(v) for v in values.values()), f"{title} / {legend}: {values}"
    assert all(v >= 0 for v in values.values()), f"{title} / {legend}: {values}"
    labels = [s["metric"] for s in series]
    if title == "Request rate by endpoint":
        assert {m["endpoint"] for m in labels} >= {"/generate", "/samples", "/interpolate"}
        assert "/generate_batch" not in {m["endpoint"] for m in labels}  # internal hop
        # Every endpoint the burst called served traffic; others (never called) may be 0.
        called = {path for _, path, _, _ in CALLS}
        by_endpoint = {s["metric"]["endpoint"]: float(s["value"][1]) for s in series}
        assert all(by_endpoint[e] > 0 for e in called), by_endpoint
    elif title.startswith("Latency") or title == "Inference time per batch":
        assert all(v > 0 for v in values.values()), values
    elif title == "Error rate by status code":
        codes = {m["http_response_code"]: 0.0 for m in labels}
        for s in series:
            codes[s["metric"]["http_response_code"]] += float(s["value"][1])
        assert codes.get("400", 0) > 0 and codes.get("404", 0) > 0, codes
    elif title.startswith("Batch size") or title.startswith("Requests merged"):
        assert all(v >= 1 for v in values.values()), values
    elif title == "5xx share of API requests":
        assert all(v == 0 for v in values.values()), values  # every answer was expected
    elif title == "Event loop stopped by garbage collection":
        # Each worker's start-up collection (service/heap.py) creates generation 2's series.
        assert "2" in {m["generation"] for m in labels}, series
        assert all(v < 1 for v in values.values()), values  # a share of each process's time
    elif title == "Images generated per second by model":
        assert {m["model"] for m in labels} >= {"fashion-cgan", "fashion-dcgan"}
        assert all(v > 0 for v in values.values())


@pytest.fixture(scope="module")
def inprocess_server() -> Iterator[LiveServer]:
    """The CPU overlay's mode, set explicitly (auto would pick adaptive where a GPU is)."""
    with LiveServer(models_dir=MODELS_DIR, env={"GAN_BATCHING": "inprocess"}) as live:
        yield live


@pytest.mark.slow
@pytest.mark.serve  # the servers come through request.getfixturevalue, unseen by conftest
@pytest.mark.parametrize("mode", MODES)
def test_every_dashboard_panel_returns_sane_data(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Adaptive: conftest's server, shared with the API tests; in-process: this module's."""
    started = time.monotonic()
    server: LiveServer = request.getfixturevalue(f"{mode}_server")
    decoy = f"127.0.0.1:{free_port()}"  # nothing listens: scraped only if the rules fail
    target = server.url.removeprefix("http://")
    with running_prometheus(prometheus_config(target, decoy), tmp_path) as prom:
        up = 'up{job="gan-serving", namespace="test-ns", pod="gan-serving-0"}'
        wait_for(lambda: scalar(prom, up) == 1, 20, "first scrape")

        # One call of each kind first, scraped, then the burst: a series born after
        # its first increment shows no rate for it (as in production, where each
        # series exists long before the window a panel looks at).
        api = 'service_name="gan_service", endpoint!~"/livez|/readyz|/metrics"'
        total = f"sum(bentoml_service_request_total{{{api}}})"
        before = scalar(prom, total)  # the shared server may have served other tests
        sent = 0 if math.isnan(before) else int(before)
        for rounds in (1, ROUNDS):
            sent += drive_burst(server.url, rounds)
            wait_for(lambda n=sent: scalar(prom, total) >= n, 20, "burst scraped")
        time.sleep(2.5)  # a couple more scrapes, so rate() has points after the burst

        # The shipped relabel rules kept the pod and dropped the other app's.
        assert len(query(prom, 'up{job="gan-serving"}')) == 1
        # The variables offer this pod, and the models, in the scraped namespace.
        offered = variable_values(prom)
        assert offered["namespace"] == [VARIABLES["$namespace"]]
        assert offered["pod"] == [VARIABLES["$pod"]]
        assert set(offered["model"]) >= {"fashion-cgan", "fashion-dcgan"}

        results = {}
        for title, legend, expr in panel_queries():
            series = query(prom, expr)
            check_panel(title, legend, series, mode)
            results[(title, legend)] = series
        if mode == "adaptive":
            assert results[("Requests merged per batch (adaptive batching)", "requests per batch")]

        # The alert rules evaluate on the real series; the target alerts see the pod.
        rules = requests.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        (group,) = rules
        assert len(group["rules"]) == len(
            yaml.safe_load(ALERT_RULES.read_text())["groups"][0]["rules"]
        )
        for rule in group["rules"]:
            assert rule["health"] == "ok" and not rule.get("lastError"), rule
            if rule["name"] in {"GanServingTargetDown", "GanServingTargetMissing"}:
                assert rule["state"] == "inactive", rule

        # Quantiles are ordered, per endpoint and per model.
        for title, label in (
            ("Latency p50 / p95 / p99 by endpoint", "endpoint"),
            ("Inference time per batch", "model"),
            ("Queue time before a batch runs", "model"),
        ):
            by_q = {
                q: {s["metric"][label]: float(s["value"][1]) for s in results[(title, q)]}
                for q in (
                    f"p50 {{{{{label}}}}}",
                    f"p95 {{{{{label}}}}}",
                    f"p99 {{{{{label}}}}}",
                )
            }
            p50, p95, p99 = by_q.values()
            called = {path for _, path, _, _ in CALLS}
            for key in p50:
                if label == "endpoint" and key not in called:
                    continue  # no requests in the window: no quantile
                assert p99[key] >= p95[key] >= p50[key] >= 0, (title, key, by_q)
                if title != "Queue time before a batch runs":
                    assert p50[key] > 0
    assert time.monotonic() - started < 120
