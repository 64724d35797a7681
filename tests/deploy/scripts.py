"""The generator scripts beside the manifests (k8s/grafana/dashboard.py, k8s/prometheus/alerts.py)
are not package modules: tests load them by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


def load_script(path: Path) -> Any:
    """A generator script beside the manifests, loaded by path."""
    spec = importlib.util.spec_from_file_location(f"gan_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module
