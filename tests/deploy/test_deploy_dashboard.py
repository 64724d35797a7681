"""The Grafana dashboard: committed files equal the generator's output, panels are complete,
every query is scoped by the namespace / pod / model variables, and the thresholds drawn are
the alert rules' own.

Whether each panel's query returns sane data is tests/deploy/test_deploy_prometheus.py's job.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from types import ModuleType

import yaml

from harness import REPO_ROOT
from tests.deploy.scripts import load_script

ROOT = REPO_ROOT
GRAFANA = ROOT / "k8s" / "grafana"
REQUIRED_PANELS = (
    "Request rate by endpoint",
    "Latency p50 / p95 / p99 by endpoint",
    "Error rate by status code",
    "5xx share of API requests",
    "Requests in progress per pod",
    "Rejected requests by reason",
    "Batch size actually run (images per batch)",
    "Inference time per batch",
    "Images generated per second by model",
    "Event loop stopped by garbage collection",
)


def generator() -> ModuleType:
    """k8s/grafana/dashboard.py is a script, not a package module: load it by path."""
    return load_script(GRAFANA / "dashboard.py")


def test_committed_files_equal_generator_output() -> None:
    gen = generator()
    for path, text in gen.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python k8s/grafana/dashboard.py"


def test_check_mode_cli() -> None:
    proc = subprocess.run(
        [sys.executable, str(GRAFANA / "dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_configmap_carries_the_dashboard_for_the_sidecar() -> None:
    configmap = yaml.safe_load((GRAFANA / "gan-serving-dashboard.configmap.yaml").read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"] == {"grafana_dashboard": "1"}
    (payload,) = configmap["data"].values()
    assert payload == (GRAFANA / "gan-serving-dashboard.json").read_text()


SCOPE = ('namespace=~"$namespace"', 'pod=~"$pod"')
MODEL_SCOPE = 'model=~"$model"'
# The service's metrics of a whole process, not of one model: no `model` label to scope.
PER_PROCESS = {"gan_gc_pause_seconds_sum"}
SCOPED_VARIABLES = ("namespace", "pod", "model")


def test_panels_queries_and_variables() -> None:
    dashboard = json.loads((GRAFANA / "gan-serving-dashboard.json").read_text())
    assert dashboard["uid"] == "gan-serving"
    variable, *scoped = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": "${" + variable["name"] + "}"}
    assert [v["name"] for v in scoped] == list(SCOPED_VARIABLES)
    for v in scoped:
        assert v["type"] == "query" and v["datasource"] == ref
        assert v["query"].startswith("label_values(") and v["query"].endswith(f", {v['name']})")
        # Multi-select with `All` as the regex .*, selected by default.
        assert v["multi"] and v["includeAll"] and v["allValue"] == ".*"
        assert v["current"]["value"] == ["$__all"]

    panels = {p["title"]: p for p in dashboard["panels"]}
    assert len(panels) == len(dashboard["panels"]), "duplicate panel titles"
    for title in REQUIRED_PANELS:
        assert title in panels, f"missing panel {title!r}"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == ref, panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"] == ref
            assert target["expr"] and target["legendFormat"]
            # Every series selector is scoped: environments sharing a Prometheus stay apart.
            unquoted = re.sub(r'"[^"]*"', '""', target["expr"])  # label values aside
            names = re.findall(r"\b((?:bentoml|gan)_\w+)", unquoted)
            selectors = re.findall(r"\b((?:bentoml|gan)_\w+)\{([^}]*)\}", target["expr"])
            assert names and len(selectors) == len(names), target["expr"]
            for metric, labels in selectors:
                assert all(s in labels for s in SCOPE), (panel["title"], metric)
                if metric.startswith("gan_") and metric not in PER_PROCESS:  # per model
                    assert MODEL_SCOPE in labels, (panel["title"], metric)

    exprs = {t: [q["expr"] for q in p["targets"]] for t, p in panels.items()}
    latency = exprs["Latency p50 / p95 / p99 by endpoint"]
    assert [e.split(",")[0] for e in latency] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert all("bentoml_service_request_duration_seconds_bucket" in e for e in latency)
    # The batch panel must count images (our histogram), not BentoML's requests-per-batch.
    batch = " ".join(exprs["Batch size actually run (images per batch)"])
    assert "gan_batch_images" in batch and "adaptive_batch_size" not in batch
    assert "http_response_code" in exprs["Error rate by status code"][0]
    assert "gan_rejected_requests_total" in exprs["Rejected requests by reason"][0]
    # A panel that may be empty says so, and why.
    for title in ("Rejected requests by reason", "Requests merged per batch (adaptive batching)"):
        assert "Empty " in panels[title]["description"], title


def test_thresholds_are_the_alerts() -> None:
    """Each threshold line drawn is the threshold of an alert rule, from the same constants."""
    dashboard = json.loads((GRAFANA / "gan-serving-dashboard.json").read_text())
    rules = yaml.safe_load((ROOT / "k8s" / "prometheus" / "alerts.rules.yaml").read_text())
    alert_exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    drawn = {}
    for panel in dashboard["panels"]:
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        steps = defaults.get("thresholds", {}).get("steps", [])
        values = [s["value"] for s in steps if s["value"] is not None]
        if values:
            assert defaults["custom"]["thresholdsStyle"]["mode"] == "dashed", panel["title"]
            drawn[panel["title"]] = values
        for value in values:
            assert any(e.endswith(f"> {value}") for e in alert_exprs), (panel["title"], value)
    assert drawn == {
        "Latency p50 / p95 / p99 by endpoint": [1.0, 2.0],
        "5xx share of API requests": [0.01],
        "Requests in progress per pod": [16],
        "Rejected requests by reason": [0.05],
        "Queue time before a batch runs": [1.0],
    }


def test_panel_grid_does_not_overlap() -> None:
    dashboard = json.loads((GRAFANA / "gan-serving-dashboard.json").read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        xs, ys = range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        mine = {(x, y) for x in xs for y in ys}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
