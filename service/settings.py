"""Runtime settings, read once from environment variables (12-factor; the k8s manifests set them).

| variable | default | meaning |
|---|---|---|
| `GAN_MODELS_DIR` | `<repo>/models` | folder of model folders to serve |
| `GAN_PROVIDERS` | `cuda,cpu` | ONNX Runtime execution providers in order of preference |
| `GAN_ORT_THREADS` | `1` | intra-op threads per ONNX Runtime session |
| `GAN_BATCHING` | `auto` | `adaptive` (BentoML batching service), `inprocess`; `auto`: inprocess |
| `GAN_MAX_BATCH_SIZE` | `256` | most images merged into one `session.run` |
| `GAN_BATCHES_IN_FLIGHT` | `2` | in-process path: batches per model and worker running at once |
| `GAN_IO_BINDING` | `auto` | `on`, `off`, or `auto` = on exactly when a model runs on a GPU |
| `GAN_MAX_LATENCY_MS` | `5000` | adaptive path: requests queued longer than this get 503 |
| `GAN_WORKERS` | `auto` | API processes; `auto`: 1 per usable core (≤ 8); adaptive on CPU: 1 |
| `GAN_INLINE_MAX_US` | `500` | in-process: calls ≤ this (lone ones: 20 ms) run on the loop; 0 off |
| `GAN_SPLIT_BATCHES` | `on` | in-process: idle inference threads share the queued work; or `off` |
| `GAN_CUDNN_CONV_SEARCH` | `heuristic` | cuDNN choice per new shape: `exhaustive`, `default` too |
| `GAN_CONNECTION_SPREAD` | `on` | a worker holding far more than its share of clients closes some |
| `GAN_GC_FREEZE` | `on` | exempt start-up objects from garbage collection (short GC pauses) |
| `GAN_GC_YOUNG_THRESHOLD` | `7000` | allocations between collections of the young generation |
| `GAN_BATCH_BUCKETS` | `auto` | pad batches up to these sizes; `auto`: 1, 2, 4 … 256 on a GPU |

Limits on what one client may ask (`Limits`, README "Limits"):

| variable | default | meaning |
|---|---|---|
| `GAN_MAX_BODY_BYTES` | 2 MiB | larger request bodies get 413 |
| `GAN_BODY_TIMEOUT_S` | `10` | a body not received within this gets 408 |
| `GAN_HEADER_TIMEOUT_S` | `10` | connections with no full request head within this close; 0 off |
| `GAN_MAX_OUTPUT_PIXELS` | 64·64·64·3 | images × channels × height × width per answer, else 422 |
| `GAN_LATENCY_TARGET_MS` | `1000` | the p99 the queue bounds aim for |
| `GAN_MAX_QUEUED_IMAGES` | `auto` | images per model and worker in flight; past it 503 |
| `GAN_QUEUE_TIMEOUT_MS` | the target | a request not started within this gets 503 |
| `GAN_API_TOKEN` | unset | bearer token(s), comma-separated; all but health, metrics, docs |
| `GAN_LOG_FORMAT` | `text` | `json`: one JSON object per log line |
| `GAN_PROBE_PORT` | `0` | a port for /livez and /readyz answered off the event loop; 0 off |
"""

from __future__ import annotations

import math
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
# In-process: below this (µs, measured per call), handing a call to an inference thread and
# back costs more than the call; README "Batching" has the measurements.
INLINE_MAX_US = 500


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


def _auto_int_env(name: str, auto: int, low: int, high: int) -> int:
    """Like `_int_env`, with `auto` (or unset) meaning the computed default."""
    if os.environ.get(name, "").strip().lower() in ("", "auto"):
        return auto
    return _int_env(name, auto, low, high)


def usable_cpus() -> int:
    """CPU cores this process may use: its affinity, capped by a cgroup v2 CPU quota (what a
    Kubernetes CPU limit sets; `os.cpu_count()` would report the whole node)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores or 1, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity stands
    return max(1, cores or 1)


def _switch_env(name: str) -> bool | None:
    """`on` / `off` / `auto` (or unset) -> True / False / None."""
    raw = os.environ.get(name, "").strip().lower() or "auto"
    choices = {"on": True, "off": False, "auto": None}
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r}: use on, off or auto")
    return choices[raw]


# ONNX Runtime's CUDA provider benchmarks every cuDNN algorithm ("EXHAUSTIVE", its default)
# the first time it sees an input shape. A batcher makes a new shape of every batch size it
# merges, so that search landed on live requests: on an H100 the service served 0.32x the
# naive server at 64 clients with it (README, "On a GPU").
CUDNN_CONV_SEARCH = {"exhaustive": "EXHAUSTIVE", "heuristic": "HEURISTIC", "default": "DEFAULT"}


def cudnn_conv_search() -> str:
    """`GAN_CUDNN_CONV_SEARCH` as the CUDA provider's `cudnn_conv_algo_search` value."""
    raw = os.environ.get("GAN_CUDNN_CONV_SEARCH", "").strip().lower() or "heuristic"
    if raw not in CUDNN_CONV_SEARCH:
        raise SettingsError(
            f"GAN_CUDNN_CONV_SEARCH={raw!r}: use one of {', '.join(CUDNN_CONV_SEARCH)}"
        )
    return CUDNN_CONV_SEARCH[raw]


def batch_buckets() -> tuple[int, ...] | None:
    """`GAN_BATCH_BUCKETS`: None for `auto` (decided per engine by its provider), () for `off`,
    else the batch sizes, ascending."""
    raw = os.environ.get("GAN_BATCH_BUCKETS", "").strip().lower() or "auto"
    if raw in ("auto", "off"):
        return None if raw == "auto" else ()
    try:
        sizes = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        raise SettingsError(
            f"GAN_BATCH_BUCKETS={raw!r}: use auto, off or batch sizes such as 1,2,4,8,16,32,64"
        )
    return tuple(sizes)


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
    inline_max_ms: float = 0.0  # in-process: calls this cheap run on the event loop when idle
    split_batches: bool = True  # in-process: idle inference threads share the queue
    connection_spread: bool = True  # service/connection_spread.py
    gc_freeze: bool = True  # service/heap.py
    gc_young_threshold: int = 7000  # service/heap.py; Python's own default is 700

    @classmethod
    def from_env(cls) -> Settings:
        providers = parse_providers(os.environ.get("GAN_PROVIDERS", "cuda,cpu"))
        mode = os.environ.get("GAN_BATCHING", "auto").strip().lower() or "auto"
        if mode not in ("auto", "adaptive", "inprocess"):
            raise SettingsError(f"GAN_BATCHING={mode!r}: use auto, adaptive or inprocess")
        cudnn_conv_search()  # a bad value stops the start, not the first CUDA session
        batch_buckets()
        accelerator = accelerator_available(providers)
        auto_mode, auto_workers = auto_defaults(accelerator, mode if mode != "auto" else None)
        mode = mode if mode != "auto" else auto_mode
        return cls(
            models_dir=Path(os.environ.get("GAN_MODELS_DIR") or DEFAULT_MODELS_DIR),
            providers=providers,
            ort_threads=_int_env("GAN_ORT_THREADS", 1, 0, 256),
            batching=mode,  # type: ignore[arg-type]
            max_batch_size=_int_env("GAN_MAX_BATCH_SIZE", 256, 64, 65536),
            max_latency_ms=_int_env("GAN_MAX_LATENCY_MS", 5000, 10, 600_000),
            batches_in_flight=_int_env("GAN_BATCHES_IN_FLIGHT", 2, 1, 64),
            io_binding=_switch_env("GAN_IO_BINDING"),
            workers=_auto_int_env("GAN_WORKERS", auto_workers, 1, 64),
            inline_max_ms=_int_env("GAN_INLINE_MAX_US", INLINE_MAX_US, 0, 1_000_000) / 1000,
            split_batches=_switch_env("GAN_SPLIT_BATCHES") is not False,
            connection_spread=_switch_env("GAN_CONNECTION_SPREAD") is not False,
            gc_freeze=_switch_env("GAN_GC_FREEZE") is not False,
            gc_young_threshold=_int_env("GAN_GC_YOUNG_THRESHOLD", 7000, 100, 1_000_000),
        )


def auto_defaults(accelerator: bool, batching: str | None = None) -> tuple[Batching, int]:
    """What `GAN_BATCHING=auto` and `GAN_WORKERS=auto` resolve to on a host with or without a
    GPU (`batching`: an explicit mode, which only the worker count then depends on).

    In-process on CPU and on a GPU, one API process per usable core (at most 8): each runs
    its own event loop, batcher and ONNX Runtime session, so the HTTP work, which sets the
    throughput once inference is cheap, uses every core; on the accelerator-shaped benchmark
    this beat one API worker in front of the adaptive batching service at every load
    (README, "Batching"). Adaptive on CPU keeps one API worker: its batching process needs
    the cores for inference.
    """
    mode: Batching = batching or "inprocess"  # type: ignore[assignment]
    workers = 1 if mode == "adaptive" and not accelerator else min(usable_cpus(), 8)
    return mode, workers


def accelerator_available(providers: list[str]) -> bool:
    """True when a GPU provider is requested, built into this ONNX Runtime, and a GPU is there.

    onnxruntime-gpu lists CUDA as available even on a machine without a GPU (a session then
    falls back to CPU), so the device nodes are checked too.
    """
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted = any(p != "CPUExecutionProvider" and p in available for p in providers)
    return wanted and any(Path("/dev").glob("nvidia[0-9]*"))


# Largest output any shipped-style model can need at the schema's 64 images: 64 x 64x64 RGB.
DEFAULT_MAX_OUTPUT_PIXELS = 64 * 64 * 64 * 3


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the service (README, "Limits"); read once per process."""

    max_body_bytes: int
    body_timeout_s: float
    header_timeout_s: float  # 0: connections may take forever to send a request head
    max_output_pixels: int  # images x channels x height x width in one answer
    latency_target_ms: int
    max_queued_images: int | None  # per model and worker; None: derived from the target
    queue_timeout_ms: int
    api_tokens: tuple[str, ...]  # empty: no bearer-token check
    log_format: Literal["text", "json"]
    probe_port: int  # 0: health probes only on the API port, on the event loop

    @property
    def retry_after_s(self) -> int:
        """What a shed request is told to wait: one latency target, at least a second."""
        return max(1, math.ceil(self.latency_target_ms / 1000))

    @classmethod
    def from_env(cls) -> Limits:
        target = _int_env("GAN_LATENCY_TARGET_MS", 1000, 10, 600_000)
        queued = os.environ.get("GAN_MAX_QUEUED_IMAGES", "").strip().lower()
        log_format = os.environ.get("GAN_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise SettingsError(f"GAN_LOG_FORMAT={log_format!r}: use text or json")
        tokens = tuple(t.strip() for t in os.environ.get("GAN_API_TOKEN", "").split(","))
        return cls(
            max_body_bytes=_int_env("GAN_MAX_BODY_BYTES", 2 * 1024 * 1024, 1024, 1 << 31),
            body_timeout_s=_int_env("GAN_BODY_TIMEOUT_S", 10, 1, 3600),
            header_timeout_s=_int_env("GAN_HEADER_TIMEOUT_S", 10, 0, 3600),
            max_output_pixels=_int_env(
                "GAN_MAX_OUTPUT_PIXELS", DEFAULT_MAX_OUTPUT_PIXELS, 1, 1 << 31
            ),
            latency_target_ms=target,
            max_queued_images=None
            if queued in ("", "auto")
            else _int_env("GAN_MAX_QUEUED_IMAGES", 0, 1, 1 << 24),
            queue_timeout_ms=_int_env("GAN_QUEUE_TIMEOUT_MS", target, 1, 600_000),
            api_tokens=tuple(t for t in tokens if t),
            log_format=log_format,  # type: ignore[arg-type]
            probe_port=_int_env("GAN_PROBE_PORT", 0, 0, 65535),
        )


def _default_jobs_dir() -> Path:
    home = os.environ.get("BENTOML_HOME") or str(Path.home() / "bentoml")
    return Path(home) / "gan-jobs"


@dataclass(frozen=True)
class JobLimits:
    """Bulk generation jobs (service/jobs, README "Jobs"); read once per process.

    | variable | default | meaning |
    |---|---|---|
    | `GAN_JOBS_DIR` | `$BENTOML_HOME/gan-jobs` | job state (`jobs.db`, SQLite) |
    | `GAN_JOBS_RESULTS_DIR` | `<GAN_JOBS_DIR>/results` | finished data sets (a volume in k8s) |
    | `GAN_JOBS_MAX_IMAGES` | `1000000` | images in one job, else 422 |
    | `GAN_JOBS_MAX_ACTIVE` | `4` | jobs pending or running at once, else 429 |
    | `GAN_JOBS_MAX_STORAGE_BYTES` | 10 GiB | results kept plus room reserved by active jobs |
    | `GAN_JOBS_TTL_S` | `86400` | a finished job's result is deleted this long after it ends |
    | `GAN_JOBS_CHUNK_IMAGES` | `auto` | images per inference call of a job, ≤ GAN_MAX_BATCH_SIZE; |
    |  |  | `auto`: 64 in-process (CPU images/s is flat from batch 32), else GAN_MAX_BATCH_SIZE |
    | `GAN_JOBS_NICE` | `10` | nice increment of job threads: interactive work gets the CPU first |
    """

    jobs_dir: Path
    results_dir: Path
    max_images: int
    max_active: int
    max_storage_bytes: int
    ttl_s: int
    chunk_images: int
    nice: int

    @classmethod
    def from_env(cls, settings: Settings) -> JobLimits:
        jobs_dir = Path(os.environ.get("GAN_JOBS_DIR") or _default_jobs_dir())
        largest = settings.max_batch_size
        auto_chunk = min(64, largest) if settings.batching == "inprocess" else largest
        return cls(
            jobs_dir=jobs_dir,
            results_dir=Path(os.environ.get("GAN_JOBS_RESULTS_DIR") or jobs_dir / "results"),
            max_images=_int_env("GAN_JOBS_MAX_IMAGES", 1_000_000, 1, 1 << 31),
            max_active=_int_env("GAN_JOBS_MAX_ACTIVE", 4, 1, 1024),
            max_storage_bytes=_int_env("GAN_JOBS_MAX_STORAGE_BYTES", 10 << 30, 1, 1 << 50),
            ttl_s=_int_env("GAN_JOBS_TTL_S", 24 * 3600, 1, 365 * 24 * 3600),
            chunk_images=min(
                _auto_int_env("GAN_JOBS_CHUNK_IMAGES", auto_chunk, 1, largest), largest
            ),
            nice=_int_env("GAN_JOBS_NICE", 10, 0, 19),
        )
