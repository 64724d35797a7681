"""Runtime settings, read once from environment variables (12-factor; the k8s manifests set them).

| variable | default | meaning |
|---|---|---|
| `GAN_MODELS_DIR` | `<repo>/models` | folder of model folders to serve |
| `GAN_PROVIDERS` | `cuda,cpu` | ONNX Runtime execution providers in order of preference |
| `GAN_ORT_THREADS` | `1` | intra-op threads per ONNX Runtime session |
| `GAN_BATCHING` | `auto` | `adaptive` (BentoML batching service), `inprocess`, or `auto` |
| `GAN_MAX_BATCH_SIZE` | `256` | most images merged into one `session.run` |
| `GAN_BATCHES_IN_FLIGHT` | `2` | in-process path: batches per model running at once |
| `GAN_IO_BINDING` | `auto` | `on`, `off`, or `auto` = on exactly when a model runs on a GPU |
| `GAN_MAX_LATENCY_MS` | `5000` | adaptive path: requests queued longer than this get 503 |
| `GAN_WORKERS` | `1` | worker processes of the public API service |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

# Short names accepted in GAN_PROVIDERS -> ONNX Runtime provider names.
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

Batching = Literal["adaptive", "inprocess"]


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _int_env(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _switch_env(name: str) -> bool | None:
    """`on` / `off` / `auto` (or unset) -> True / False / None."""
    raw = os.environ.get(name, "").strip().lower() or "auto"
    choices = {"on": True, "off": False, "auto": None}
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r}: use on, off or auto")
    return choices[raw]


def parse_providers(raw: str) -> list[str]:
    """`cuda,cpu` -> ONNX Runtime provider names; CPU is always the last resort."""
    names = [p.strip().lower() for p in raw.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROVIDER_NAMES]
    if unknown:
        raise SettingsError(
            f"GAN_PROVIDERS: unknown provider(s) {unknown}; use some of {sorted(PROVIDER_NAMES)}"
        )
    providers = [PROVIDER_NAMES[p] for p in dict.fromkeys(names)]
    if "CPUExecutionProvider" not in providers:
        providers.append("CPUExecutionProvider")
    return providers


@dataclass(frozen=True)
class Settings:
    models_dir: Path
    providers: list[str]
    ort_threads: int
    batching: Batching
    max_batch_size: int
    max_latency_ms: int
    batches_in_flight: int
    io_binding: bool | None  # None: decided per model by its provider
    workers: int

    @classmethod
    def from_env(cls) -> Settings:
        providers = parse_providers(os.environ.get("GAN_PROVIDERS", "cuda,cpu"))
        mode = os.environ.get("GAN_BATCHING", "auto").strip().lower() or "auto"
        if mode not in ("auto", "adaptive", "inprocess"):
            raise SettingsError(f"GAN_BATCHING={mode!r}: use auto, adaptive or inprocess")
        if mode == "auto":
            mode = "adaptive" if accelerator_available(providers) else "inprocess"
        return cls(
            models_dir=Path(os.environ.get("GAN_MODELS_DIR") or DEFAULT_MODELS_DIR),
            providers=providers,
            ort_threads=_int_env("GAN_ORT_THREADS", 1, 0, 256),
            batching=mode,  # type: ignore[arg-type]
            max_batch_size=_int_env("GAN_MAX_BATCH_SIZE", 256, 64, 65536),
            max_latency_ms=_int_env("GAN_MAX_LATENCY_MS", 5000, 10, 600_000),
            batches_in_flight=_int_env("GAN_BATCHES_IN_FLIGHT", 2, 1, 64),
            io_binding=_switch_env("GAN_IO_BINDING"),
            workers=_int_env("GAN_WORKERS", 1, 1, 64),
        )


def accelerator_available(providers: list[str]) -> bool:
    """True when a GPU provider is requested, built into this ONNX Runtime, and a GPU is there.

    onnxruntime-gpu lists CUDA as available even on a machine without a GPU (a session then
    falls back to CPU), so the device nodes are checked too.
    """
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted = any(p != "CPUExecutionProvider" and p in available for p in providers)
    return wanted and any(Path("/dev").glob("nvidia[0-9]*"))
