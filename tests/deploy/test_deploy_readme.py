"""README "Deploy" as a reader follows it, from a fresh copy of the repository.

The `flow` fixture (tests/deploy/conftest.py) runs every shell block of the section in order;
here its results are checked: both bentos built, an image per bento tagged by its version,
the images set in the overlays, and each `kubectl apply -k` rendered and validated offline,
once for a cluster without the Prometheus Operator and once with it. The YAML snippet that
changes the ServiceMonitor's release label is applied as written, too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from harness import REPO_ROOT
from tests.deploy import readme_flow
from tests.deploy.readme_flow import Flow
from tests.deploy.test_deploy_k8s import (
    BASE_KINDS,
    CRD_KINDS,
    KUBE_VERSIONS,
    OPERATOR_KINDS,
    by_kind,
    container,
    kustomize,
)

REGISTRY = "registry.example.com/gan-serving"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key twice in one mapping (kustomize would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        duplicated = {k for k in keys if keys.count(k) > 1}
        if duplicated:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {sorted(duplicated)}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def rendered(flow: Flow, name: str) -> dict[str, dict[str, Any]]:
    return by_kind([d for d in yaml.safe_load_all((flow.out / name).read_text()) if d])


@pytest.mark.slow
def test_readme_builds_one_bento_per_bentofile(flow: Flow) -> None:
    gpu, cpu = flow.variables["GPU_BENTO"], flow.variables["CPU_BENTO"]
    assert gpu != cpu
    for tag, accelerator in ((gpu, "gpu"), (cpu, "cpu")):
        # The bento keeps its service's name: metrics carry it as service_name.
        assert tag.startswith("gan_service:"), tag
        meta = yaml.safe_load((flow.bento_path(tag) / "bento.yaml").read_text())
        assert meta["labels"]["accelerator"] == accelerator
    assert ["make setup"] in flow.log  # skipped: the venv it makes runs these tests


@pytest.mark.slow
def test_readme_tags_images_by_bento_version_and_pushes_them(flow: Flow) -> None:
    v = flow.variables
    for kind in ("GPU", "CPU"):
        version = v[f"{kind}_BENTO"].split(":")[1]
        assert v[f"{kind}_IMAGE"] == f"{REGISTRY}:{version}-{kind.lower()}"
    containerized = {bento: image for bento, image, _ in flow.calls("containerize")}
    assert containerized == {v["GPU_BENTO"]: v["GPU_IMAGE"], v["CPU_BENTO"]: v["CPU_IMAGE"]}
    for _, _, dockerfile in flow.calls("containerize"):
        assert (flow.out / dockerfile).read_text().count("\nFROM ") == 1
    assert flow.calls("docker") == [[f"push {v['GPU_IMAGE']}"], [f"push {v['CPU_IMAGE']}"]]


@pytest.mark.slow
def test_readme_applies_to_clusters_with_and_without_the_operator(flow: Flow) -> None:
    applied = flow.calls("apply")
    overlays = [path for path, _, _ in applied]
    assert sorted(overlays) == ["k8s/overlays/gpu", "k8s/overlays/gpu-prometheus-operator"]
    assert {namespace for _, namespace, _ in applied} == {"-n gan-serving"}
    kubectl_calls = [c[0] for c in flow.calls("kubectl")]
    assert "create namespace gan-serving" in kubectl_calls
    assert "-n gan-serving rollout status deploy/gan-serving" in kubectl_calls

    for overlay, _, name in applied:
        docs = rendered(flow, name)
        operator = overlay.endswith("-prometheus-operator")
        assert set(docs) == BASE_KINDS | (OPERATOR_KINDS if operator else set()), overlay
        # The image the README pushed, set by its `kustomize edit set image`.
        assert container(docs)["image"] == flow.variables["GPU_IMAGE"]
        for kind, doc in docs.items():
            if kind not in CRD_KINDS:
                for version in KUBE_VERSIONS:
                    kubernetes_validate.validate(doc, version, strict=True)
    # The other overlay's image was set the same way.
    cpu = by_kind(kustomize(flow.root / "k8s" / "overlays" / "cpu-prometheus-operator"))
    assert container(cpu)["image"] == flow.variables["CPU_IMAGE"]


@pytest.mark.parametrize("overlay", ["gpu-prometheus-operator", "cpu-prometheus-operator"])
def test_release_label_snippet_appended_as_written(overlay: str, tmp_path: Path) -> None:
    """The README's YAML, appended to the overlay it names: one `patches:` key, both objects
    relabelled, and the overlay's own patches (GPU resources, CPU env) still applied."""
    (snippet,) = readme_flow.yaml_blocks("Run on Kubernetes")
    k8s = tmp_path / "k8s"
    shutil.copytree(REPO_ROOT / "k8s", k8s, ignore=shutil.ignore_patterns("__pycache__"))
    kustomization = k8s / "overlays" / overlay / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + snippet)
    yaml.load(kustomization.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader

    release = yaml.safe_load(snippet)["patches"][0]["patch"]
    value = yaml.safe_load(release)[0]["value"]
    assert value != "prometheus"
    docs = by_kind(kustomize(kustomization.parent))
    for kind in OPERATOR_KINDS:
        assert docs[kind]["metadata"]["labels"]["release"] == value, kind
    assert docs["Deployment"]["metadata"]["labels"].get("release") is None
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    # The overlay's own patch survives the component: its provider, and a GPU where it asks.
    if overlay.startswith("gpu"):
        assert container(docs)["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert env["GAN_PROVIDERS"].startswith("cuda")
    else:
        assert env["GAN_PROVIDERS"] == "cpu"


def test_readme_names_every_overlay_and_the_minimum_kubernetes() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    deploy = text[text.index("\n## Deploy\n") :]
    for overlay in sorted((REPO_ROOT / "k8s" / "overlays").iterdir()):
        assert overlay.name in deploy, f"README Deploy does not mention overlay {overlay.name}"
    assert "Kubernetes 1.30 or newer" in deploy
