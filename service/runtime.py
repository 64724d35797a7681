"""This process's settings and verified model registry, each loaded once on first use.

Every BentoML process (the arbiter, each API worker, the batching service) imports the
service module and so reads these; the arbiter reads them first, so a bad setting or a
broken model folder stops `bentoml serve` before any worker starts.
"""

from __future__ import annotations

import functools

from service.engine import verify_models
from service.registry import ModelEntry, load_registry
from service.settings import Limits, Settings


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def limits() -> Limits:
    return Limits.from_env()


@functools.cache
def registry() -> dict[str, ModelEntry]:
    """Every model folder to serve, checked (card, sha256, graph, one run) or ModelFolderError."""
    entries = load_registry(settings().models_dir)
    verify_models(entries)
    return entries
