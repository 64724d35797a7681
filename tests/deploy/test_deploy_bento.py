"""The bentos README "Deploy" builds, the Dockerfiles they containerize with, and serving them.

The bentos come from the `flow` fixture: README's own `bentoml build` commands, run in a
scratch copy of the repository (real builds, no lock: lock_packages is off, see README).
There is no Docker engine here, so each image is checked in the Dockerfile that
`bentoml containerize` would build (BentoML's `get_containerfile`, called by the flow for
README's containerize commands): pip before its first use, the onnxruntime-gpu range on the
base image's CUDA major, build tools purged. Each bento is then served with
`bentoml serve <tag>` in both batching modes, on CPU.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest
import requests
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from harness import REPO_ROOT
from harness.live_server import LiveServer
from service.card import CARD_FILE, MODEL_FILE
from service.registry import model_folders
from tests.deploy.readme_flow import Flow

ROOT = REPO_ROOT
# Every model folder the service would serve ships in the bento.
SHIPPED_MODELS = tuple(p.name for p in model_folders(ROOT / "models"))
# Per bentofile: README's variable for its bento, its ONNX Runtime build, the image's base
# and GAN_PROVIDERS.
VARIANTS = {
    "bentofile.yaml": (
        "GPU_BENTO",
        "onnxruntime-gpu",
        "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04",
        "cuda,cpu",
    ),
    "bentofile.cpu.yaml": ("CPU_BENTO", "onnxruntime", "python:3.11-slim", "cpu"),
}
PYTHON = "3.11"
STRIP_SCRIPT = ROOT / "k8s" / "image" / "strip-build-tools.sh"
BUILD_TOOLS = {"build-essential", "gcc", "g++", "make", "git", "gnupg2", "python3-pip"}
# Bases whose Python refuses `pip install` outside a venv (PEP 668's EXTERNALLY-MANAGED).
PEP668_BASES = ("ubuntu24.04",)
BATCHING_MODES = ("adaptive", "inprocess")


def ort_gpu_cuda_major(version: Version) -> int:
    """The CUDA major onnxruntime-gpu's PyPI wheels are built for (ONNX Runtime's CUDA EP
    docs; from 1.27 the wheels' `[cuda]` extra requires nvidia-*-cu13)."""
    if version >= Version("1.27"):
        return 13
    if version >= Version("1.19"):
        return 12
    return 11


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def apt_installed(run: str) -> set[str]:
    """Package names an `apt-get install` in one RUN line installs (options dropped)."""
    names: set[str] = set()
    for part in re.split(r"&&|;", run):
        words = part.split()
        if "apt-get" in words and "install" in words:
            after = words[words.index("install") + 1 :]
            names |= {w for w in after if not w.startswith("-")}
    return names


def purged(script: str) -> set[str]:
    (line,) = [ln for ln in script.splitlines() if ln.strip().startswith("for package in")]
    return set(line.split(" in ", 1)[1].rstrip("; do").split())


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def bento(request: pytest.FixtureRequest, flow: Flow) -> tuple[str, Path]:
    return request.param, flow.bento_path(flow.variables[VARIANTS[request.param][0]])


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def containerfile(request: pytest.FixtureRequest, flow: Flow) -> tuple[str, str, Path]:
    """(bentofile, the Dockerfile `bentoml containerize` builds, the bento's folder)."""
    tag = flow.variables[VARIANTS[request.param][0]]
    (name,) = [f for bento, _, f in flow.calls("containerize") if bento == tag]
    return request.param, (flow.out / name).read_text(), flow.bento_path(tag)


def test_bentofiles_agree_on_what_ships() -> None:
    gpu, cpu = (yaml.safe_load((ROOT / f).read_text()) for f in VARIANTS)
    for key in ("service", "include", "exclude"):
        assert gpu[key] == cpu[key], f"bentofile.yaml and bentofile.cpu.yaml differ on {key}"
    assert gpu["python"]["lock_packages"] is False  # README explains the choice
    assert "onnxruntime-gpu" not in " ".join(cpu["python"]["packages"])
    for config in (gpu, cpu):
        # No `name:`: `bentoml serve <bento>` labels metrics with the bento's name, and the
        # dashboard and alerts select service_name="gan_service".
        assert "name" not in config
        # Keys that make BentoML 1.4 fall back to its legacy image builder.
        assert not {"cuda_version", "dockerfile_template"} & set(config["docker"])
        assert "env" not in config["docker"]  # ignored by the new builder: `envs:` instead


def test_onnxruntime_gpu_range_matches_the_base_images_cuda() -> None:
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    base = bentofile["docker"]["base_image"]
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu[\d.]+", base)
    assert match, base
    cuda_major = int(match[1])
    (spec,) = [
        Requirement(p).specifier
        for p in bentofile["python"]["packages"]
        if Requirement(p).name == "onnxruntime-gpu"
    ]
    releases = [Version(f"1.{minor}.{patch}") for minor in range(15, 40) for patch in range(4)]
    allowed = [v for v in releases if v in spec]
    assert allowed, spec
    wrong = [str(v) for v in allowed if ort_gpu_cuda_major(v) != cuda_major]
    assert not wrong, f"{spec} admits onnxruntime-gpu {wrong}, not built for CUDA {cuda_major}"
    # And the pyproject `gpu` extra (local GPU installs) agrees.
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (local,) = [Requirement(r) for r in extra["optional-dependencies"]["gpu"]]
    assert local.name == "onnxruntime-gpu" and local.specifier == spec


@pytest.mark.slow
def test_bento_holds_service_and_models(bento: tuple[str, Path], flow: Flow) -> None:
    bentofile, path = bento
    clone = flow.root  # what was built (the working tree may have moved on since)
    src = path / "src"
    service_entry = yaml.safe_load((ROOT / bentofile).read_text())["service"]
    meta = yaml.safe_load((path / "bento.yaml").read_text())
    assert meta["service"] == service_entry
    module = service_entry.split(":")[0].replace(".", "/") + ".py"
    assert (src / module).is_file()
    shipped = sorted(p.relative_to(clone).as_posix() for p in (clone / "service").rglob("*.py"))
    packed = sorted(p.relative_to(src).as_posix() for p in (src / "service").rglob("*.py"))
    assert packed == shipped

    assert SHIPPED_MODELS, f"no model folder in {ROOT / 'models'}"
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
def test_bento_requirements(bento: tuple[str, Path]) -> None:
    bentofile, path = bento
    runtime = VARIANTS[bentofile][1]
    reqs = (path / "env" / "python" / "requirements.txt").read_text().splitlines()
    names = {Requirement(r).name for r in reqs if r.strip() and not r.startswith(("#", "-"))}
    for package in ("bentoml", "numpy", "pillow", "pydantic", "prometheus-client", runtime):
        assert package in names, f"{package} missing from {reqs}"
    # Never both ONNX Runtime builds (they install into the same package folder), no torch.
    assert not ({"onnxruntime", "onnxruntime-gpu"} - {runtime}) & names
    assert not {"torch", "torchvision"} & names
    # BentoML 1.4's image builder (`image:` in bento.yaml), not the legacy fallback.
    meta = yaml.safe_load((path / "bento.yaml").read_text())
    assert meta.get("image", {}).get("base_image") == VARIANTS[bentofile][2]


@pytest.mark.slow
def test_containerfile_installs_pip_before_using_it(containerfile: tuple[str, str, Path]) -> None:
    bentofile, dockerfile, _ = containerfile
    _, _, base, providers = VARIANTS[bentofile]
    steps = instructions(dockerfile)
    froms = [args.split()[0] for keyword, args in steps if keyword == "FROM"]
    assert froms == [base], froms
    assert "deadsnakes" not in dockerfile and "add-apt-repository" not in dockerfile
    env = {}
    pip_ready = base.startswith("python:")  # the official Python images carry pip
    first_pip = None
    for i, (keyword, args) in enumerate(steps):
        if keyword == "ENV":
            name, _, value = args.partition("=")
            env[name] = value
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            env.setdefault(name, value)
        if keyword != "RUN":
            continue
        if "python3-pip" in apt_installed(args):
            pip_ready = True
        # `pip install` run by pip itself (uv's `uv pip install` needs no pip).
        if re.search(r"(?<!uv )(?<![\w/-])pip3? install", args) and first_pip is None:
            first_pip = i
            assert pip_ready, f"pip is used before anything installs it: {args[:120]}"
            if any(tag in base for tag in PEP668_BASES):
                assert env.get("PIP_BREAK_SYSTEM_PACKAGES") == "$PIP_BREAK_SYSTEM_PACKAGES"
    assert first_pip is not None, "BentoML's uv bootstrap (`pip install uv`) is gone: re-check"
    if any(tag in base for tag in PEP668_BASES):
        assert "ARG PIP_BREAK_SYSTEM_PACKAGES=1" in dockerfile
    assert f"uv venv --python {PYTHON} /app/.venv" in dockerfile
    assert f"ARG GAN_PROVIDERS={providers}\n" in dockerfile
    assert "ENV GAN_PROVIDERS=$GAN_PROVIDERS" in dockerfile


@pytest.mark.slow
def test_containerfile_leaves_no_build_tools(containerfile: tuple[str, str, Path]) -> None:
    """Whatever apt installs that only building needs is purged after the packages are in."""
    _, dockerfile, bento = containerfile
    steps = instructions(dockerfile)
    runs = [(i, args) for i, (keyword, args) in enumerate(steps) if keyword == "RUN"]
    installed = set().union(*(apt_installed(args) for _, args in runs))
    (install_at,) = [i for i, args in runs if "pip install -r" in args and "uv " in args]
    scripts = [(i, args) for i, args in runs if "./env/docker/script__" in args]
    assert len(scripts) == 1, scripts
    script_at, script_run = scripts[0]
    entry_at = next(i for i, (keyword, _) in enumerate(steps) if keyword == "ENTRYPOINT")
    assert install_at < script_at < entry_at
    name = re.search(r"\./env/docker/(script__\w+)", script_run)[1]
    script = (bento / "env" / "docker" / name).read_text()
    assert script == STRIP_SCRIPT.read_text()
    assert "apt-get purge -y --auto-remove" in script and "/var/lib/apt/lists" in script
    left = (installed & BUILD_TOOLS) - purged(script)
    assert not left, f"build tools left in the runtime image: {sorted(left)}"
    # Nothing after the purge installs packages again.
    assert not any(apt_installed(args) for i, args in runs if i > script_at)


@pytest.mark.slow
@pytest.mark.parametrize("mode", BATCHING_MODES)
def test_built_bento_serves_in_each_batching_mode(
    bento: tuple[str, Path], mode: str, flow: Flow, tmp_path: Path
) -> None:
    """`bentoml serve <tag>` from outside the repo, one request: nothing was left out of the
    bento, and both inference paths start from it (either may be set on any node; no GPU
    here, so both run on the CPU provider)."""
    bentofile, _ = bento
    tag = flow.variables[VARIANTS[bentofile][0]]
    env = {"GAN_PROVIDERS": "cpu", "GAN_BATCHING": mode, "GAN_MODELS_DIR": None}
    with LiveServer(target=tag, bentoml_home=flow.home, cwd=tmp_path, env=env) as server:
        listing = requests.get(f"{server.url}/models", timeout=10).json()
        assert sorted(m["name"] for m in listing["models"]) == list(SHIPPED_MODELS)
        resp = requests.post(
            f"{server.url}/generate",
            json={"model": SHIPPED_MODELS[0], "n": 2, "seed": 7},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/png"
        assert resp.content.startswith(b"\x89PNG")
