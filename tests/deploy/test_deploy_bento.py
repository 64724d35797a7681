"""`bentoml build` of the GPU and CPU bentofiles, into a throw-away BentoML home.

Real builds (no lock: lock_packages is off, see README "Deploy"), then a look inside the
bento: the service code, both shipped models byte for byte, the requirements and the
generated Dockerfile's base image. `bentoml containerize` needs a Docker engine; not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from harness import REPO_ROOT
from harness.live_server import free_port
from service.card import CARD_FILE, MODEL_FILE

ROOT = REPO_ROOT
BENTOML = Path(sys.executable).parent / "bentoml"
# Every model folder in the repo ships; these two at least (the contract).
SHIPPED_MODELS = tuple(sorted(p.parent.name for p in (ROOT / "models").glob(f"*/{CARD_FILE}")))
assert {"fashion-cgan", "fashion-dcgan"} <= set(SHIPPED_MODELS), SHIPPED_MODELS
# Per bentofile: the ONNX Runtime build it must require and the Dockerfile's base image.
VARIANTS = {
    "bentofile.yaml": ("onnxruntime-gpu", "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"),
    "bentofile.cpu.yaml": ("onnxruntime", "python:3.11-slim"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(bentofile: str, home: Path) -> Path:
    """Run `bentoml build` and return the bento's folder in the store."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    proc = subprocess.run(
        [str(BENTOML), "build", "-f", bentofile, "--output", "tag", str(ROOT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"bentoml build failed:\n{proc.stdout}\n{proc.stderr}"
    # `--output tag` prints `__tag__:name:version` as its last line.
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = home / "bentos" / name / version
    assert (bento / "bento.yaml").is_file(), f"no bento at {bento}"
    return bento


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def bento(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return request.param, build(request.param, tmp_path_factory.mktemp("bentoml-home"))


def test_bentofiles_agree_on_what_ships() -> None:
    gpu, cpu = (yaml.safe_load((ROOT / f).read_text()) for f in VARIANTS)
    for key in ("service", "include", "exclude"):
        assert gpu[key] == cpu[key], f"bentofile.yaml and bentofile.cpu.yaml differ on {key}"
    assert gpu["python"]["lock_packages"] is False  # README explains the choice
    assert "onnxruntime-gpu" not in " ".join(cpu["python"]["packages"])


@pytest.mark.slow
def test_bento_holds_service_and_models(bento: tuple[str, Path]) -> None:
    bentofile, path = bento
    src = path / "src"
    service_entry = yaml.safe_load((ROOT / bentofile).read_text())["service"]
    meta = yaml.safe_load((path / "bento.yaml").read_text())
    assert meta["service"] == service_entry
    module = service_entry.split(":")[0].replace(".", "/") + ".py"
    assert (src / module).is_file()
    shipped = sorted(p.name for p in (ROOT / "service").glob("*.py"))
    assert sorted(p.name for p in (src / "service").glob("*.py")) == shipped

    for name in SHIPPED_MODELS:
        folder = src / "models" / name
        assert {CARD_FILE, MODEL_FILE} <= {p.name for p in folder.iterdir()}
        card = json.loads((folder / CARD_FILE).read_text())
        assert card["name"] == name
        assert _sha256(folder / MODEL_FILE) == _sha256(ROOT / "models" / name / MODEL_FILE)


@pytest.mark.slow
def test_bento_leaves_out_everything_else(bento: tuple[str, Path]) -> None:
    _, path = bento
    src = path / "src"
    top = sorted(p.name for p in src.iterdir())
    assert top == ["bentofile.yaml", "models", "service"], top
    unwanted = [
        p.relative_to(src)
        for p in src.rglob("*")
        if p.name in {"__pycache__", "runs", "tests", "data", ".venv"} or p.suffix == ".pyc"
    ]
    assert unwanted == []


@pytest.mark.slow
def test_bento_requirements_and_image(bento: tuple[str, Path]) -> None:
    bentofile, path = bento
    runtime, base_image = VARIANTS[bentofile]
    reqs = (path / "env" / "python" / "requirements.txt").read_text().splitlines()
    names = {r.split("=")[0].split(">")[0].split("<")[0].strip() for r in reqs if r.strip()}
    for package in ("bentoml", "numpy", "pillow", "pydantic", "prometheus-client", runtime):
        assert package in names, f"{package} missing from {reqs}"
    # Never both ONNX Runtime builds (they install into the same package folder), no torch.
    assert not ({"onnxruntime", "onnxruntime-gpu"} - {runtime}) & names
    assert not {"torch", "torchvision"} & names
    dockerfile = (path / "env" / "docker" / "Dockerfile").read_text()
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms and froms[0] == base_image, froms


@pytest.mark.slow
def test_built_bento_serves_both_models(bento: tuple[str, Path], tmp_path: Path) -> None:
    """`bentoml serve <bento>` from outside the repo: nothing the service needs was left out."""
    _, path = bento
    port = free_port()
    home = path.parents[2]
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    env["GAN_PROVIDERS"] = "cpu"  # the GPU bento's code runs on CPU too (no GPU here)
    env.pop("GAN_MODELS_DIR", None)  # the bento's own models/ must be found
    proc = subprocess.Popen(
        [str(BENTOML), "serve", str(path), "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        assert proc.poll() is None, f"bentoml serve exited with {proc.returncode}"
        listing = requests.get(f"http://127.0.0.1:{port}/models", timeout=10).json()
        assert sorted(m["name"] for m in listing["models"]) == list(SHIPPED_MODELS)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
