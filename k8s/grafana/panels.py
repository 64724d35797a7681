"""The dashboard's panels: each one's title, meaning, unit, PromQL and alert thresholds.

Every query is scoped by the variables namespace, pod and model; thresholds come from the
alert rules' source, k8s/prometheus/alerts.py.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
# Every query is scoped to the selected namespaces and pods; the gan_* metrics to the models.
SCOPE = 'namespace=~"$namespace", pod=~"$pod"'
MODELS = f'{SCOPE}, model=~"$model"'
# The public service only (with adaptive batching the internal gan_generator service reports
# its /generate_batch calls too), without the health and scrape routes that would swamp it.
API_ONLY = f'{SCOPE}, service_name="gan_service", endpoint!~"/metrics|/livez|/readyz|/healthz"'
RATE = "$__rate_interval"


def _alerts() -> ModuleType:
    """k8s/prometheus/alerts.py, the alerts' thresholds (a script beside the rules, by path)."""
    path = HERE.parent / "prometheus" / "alerts.py"
    spec = importlib.util.spec_from_file_location("gan_alerts", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ALERTS = _alerts()


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    # Alert thresholds drawn as dashed lines: (value, colour), orange warns, red pages.
    thresholds: tuple[tuple[float, str], ...] = field(default=())


def _latency(histogram: str, by: str, selector: str) -> tuple[Query, ...]:
    """p50/p95/p99 of a Prometheus histogram, one series per value of the `by` label."""
    bucket = f"{histogram}_bucket{{{selector}}}"
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket}[{RATE}])))",
            f"p{round(q * 100)} {{{{{by}}}}}",  # e.g. "p99 {{endpoint}}"
        )
        for q in (0.5, 0.95, 0.99)
    )


def panel_specs() -> list[PanelSpec]:
    """Every panel, in order: title, meaning (shown in Grafana), unit, PromQL, thresholds."""
    warn, page = "orange", "red"
    api_5xx = f'{API_ONLY}, http_response_code=~"5.."'
    all_5xx = f"sum by (namespace) (rate(bentoml_service_request_total{{{api_5xx}}}[{RATE}]))"
    all_api = f"sum by (namespace) (rate(bentoml_service_request_total{{{API_ONLY}}}[{RATE}]))"
    return [
        PanelSpec(
            "Request rate by endpoint",
            "HTTP requests per second answered by the API, per endpoint (all status codes).",
            "reqps",
            (
                Query(
                    "sum by (endpoint) "
                    f"(rate(bentoml_service_request_total{{{API_ONLY}}}[{RATE}]))",
                    "{{endpoint}}",
                ),
            ),
        ),
        PanelSpec(
            "Latency p50 / p95 / p99 by endpoint",
            "End-to-end request latency at the server, quantiles from BentoML's histogram. "
            "Alerts: p99 over the orange line for 10 min warns, over the red one for 5 min pages.",
            "s",
            _latency("bentoml_service_request_duration_seconds", "endpoint", API_ONLY),
            ((ALERTS.LATENCY_WARN_S, warn), (ALERTS.LATENCY_PAGE_S, page)),
        ),
        PanelSpec(
            "Error rate by status code",
            "Non-2xx answers per second by status code: 4xx are client mistakes, 5xx are ours "
            "(503 = overload: see the rejected-requests panel).",
            "reqps",
            (
                Query(
                    "sum by (http_response_code, endpoint) (rate(bentoml_service_request_total"
                    f'{{{API_ONLY}, http_response_code!~"2.."}}[{RATE}]))',
                    "{{http_response_code}} {{endpoint}}",
                ),
            ),
        ),
        PanelSpec(
            "5xx share of API requests",
            "Share of API requests answered with a 5xx, per namespace; the page alert fires "
            "above the red line for 5 min.",
            "percentunit",
            (
                # `or ... * 0`: 0 % rather than no data while no 5xx series exists yet.
                Query(
                    f"({all_5xx} or {all_api} * 0) / {all_api}",
                    "{{namespace}}",
                ),
            ),
            ((ALERTS.ERROR_RATIO, page),),
        ),
        PanelSpec(
            "Requests in progress per pod",
            "Requests being served right now (queued for a batch or running), per pod; the "
            "saturation alert warns above the orange line for 5 min.",
            "short",
            (
                Query(
                    f"sum by (namespace, pod) (bentoml_service_request_in_progress{{{API_ONLY}}})",
                    "{{namespace}}/{{pod}}",
                ),
            ),
            ((ALERTS.IN_FLIGHT_PER_POD, warn),),
        ),
        PanelSpec(
            "Rejected requests by reason",
            "Requests never computed, per second: shed with 503 under overload (queue_full, "
            "deadline) or abandoned by their client (client_gone). Empty "
            "until a pod has rejected one: the counter appears with its first rejection. "
            "Sustained shedding over the orange line warns.",
            "reqps",
            (
                Query(
                    "sum by (reason, model) "
                    f"(rate(gan_rejected_requests_total{{{MODELS}}}[{RATE}]))",
                    "{{reason}} {{model}}",
                ),
            ),
            ((ALERTS.SHED_PER_S, warn),),
        ),
        PanelSpec(
            "Batch size actually run (images per batch)",
            "Images in each ONNX Runtime call: mean and p95. BentoML's adaptive_batch_size "
            "counts requests per batch, not images, so this is the project's own histogram.",
            "short",
            (
                Query(
                    f"sum by (model) (rate(gan_batch_images_sum{{{MODELS}}}[{RATE}])) / "
                    f"sum by (model) (rate(gan_batch_images_count{{{MODELS}}}[{RATE}]))",
                    "mean {{model}}",
                ),
                Query(
                    "histogram_quantile(0.95, sum by (model, le) "
                    f"(rate(gan_batch_images_bucket{{{MODELS}}}[{RATE}])))",
                    "p95 {{model}}",
                ),
            ),
        ),
        PanelSpec(
            "Requests merged per batch (adaptive batching)",
            "Mean requests BentoML's adaptive batcher merged into one call "
            "(GAN_BATCHING=adaptive); each request carries 1..64 images, see the panel above. "
            "Empty with in-process batching (both overlays): that path has no such batcher.",
            "short",
            (
                Query(
                    f"sum(rate(bentoml_service_adaptive_batch_size_sum{{{SCOPE}}}[{RATE}])) / "
                    f"sum(rate(bentoml_service_adaptive_batch_size_count{{{SCOPE}}}[{RATE}]))",
                    "requests per batch",
                ),
            ),
        ),
        PanelSpec(
            "Inference time per batch",
            "Seconds per ONNX Runtime call (one batch), p50 / p95 / p99 per model.",
            "s",
            _latency("gan_inference_seconds", "model", MODELS),
        ),
        PanelSpec(
            "Queue time before a batch runs",
            "Seconds from a request's latents being ready to its batch starting, per model: "
            "the price of batching (bounded by GAN_MAX_LATENCY_MS on the adaptive path). "
            "p99 above the orange line for 5 min warns.",
            "s",
            _latency("gan_queue_seconds", "model", MODELS),
            ((ALERTS.QUEUE_P99_S, warn),),
        ),
        PanelSpec(
            "Event loop stopped by garbage collection",
            "Share of the time each pod's processes spent in Python's cyclic garbage "
            "collector, per generation (gan_gc_pause_seconds); every request in flight on a "
            "worker waits out its pauses. Near 0 with the defaults (GAN_GC_FREEZE=on, "
            "GAN_GC_YOUNG_THRESHOLD=7000); a rise, above all in generation 2, shows as "
            "latency spikes. Per process, not per model: the model variable does not apply.",
            "percentunit",
            (
                Query(
                    f"sum by (pod, generation) (rate(gan_gc_pause_seconds_sum{{{SCOPE}}}[{RATE}]))",
                    "{{pod}} generation {{generation}}",
                ),
            ),
        ),
        PanelSpec(
            "Images generated per second by model",
            "Throughput of the generators: images produced per second, per model.",
            "short",
            (
                Query(
                    f"sum by (model) (rate(gan_images_generated_total{{{MODELS}}}[{RATE}]))",
                    "{{model}}",
                ),
            ),
        ),
        PanelSpec(
            "Jobs by state",
            "Bulk generation jobs (/jobs) per state, summed over pods and the selected "
            "models: pending and in_progress are the work at hand; interrupted ones lost "
            "their process (a restart) and can be retried.",
            "short",
            (Query(f"sum by (state) (gan_jobs{{{MODELS}}})", "{{state}}"),),
        ),
        PanelSpec(
            "Job images generated per second by model",
            "Images bulk generation jobs produce per second, per model; part of the images "
            "panel above. Jobs yield to interactive requests, so this drops when they rise. "
            "0 until a pod has run a job.",
            "short",
            (
                # `or ... * 0`: 0 rather than no data before the first job's counter exists.
                Query(
                    "sum by (model) "
                    f"(rate(gan_job_images_generated_total{{{MODELS}}}[{RATE}])) or sum by "
                    f"(model) (rate(gan_images_generated_total{{{MODELS}}}[{RATE}])) * 0",
                    "{{model}}",
                ),
            ),
        ),
    ]
