"""Generate the Grafana dashboard for the GAN service, and its ConfigMap for Grafana's sidecar.

    python k8s/grafana/dashboard.py          # rewrite the two committed files
    python k8s/grafana/dashboard.py --check  # exit 1 if they differ from what this builds

The panels are built with grafana-foundation-sdk so every query lives here as code;
tests/deploy/test_deploy_prometheus.py runs each of them against a real Prometheus. The
variables namespace, pod and model scope every query, so environments sharing one Prometheus
stay apart; thresholds come from the alert rules' source, k8s/prometheus/alerts.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import yaml
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphTresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TimeZoneBrowser,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
JSON_PATH = HERE / "gan-serving-dashboard.json"
CONFIGMAP_PATH = HERE / "gan-serving-dashboard.configmap.yaml"
UID = "gan-serving"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query is scoped to the selected namespaces and pods; the gan_* metrics to the models.
SCOPE = 'namespace=~"$namespace", pod=~"$pod"'
MODELS = f'{SCOPE}, model=~"$model"'
# The public service only (with adaptive batching the internal gan_generator service reports
# its /generate_batch calls too), without the health and scrape routes that would swamp it.
API_ONLY = f'{SCOPE}, service_name="gan_service", endpoint!~"/metrics|/livez|/readyz|/healthz"'
RATE = "$__rate_interval"
# (name, label, label_values query): each narrows the next.
_SERVED = 'bentoml_service_request_total{service_name="gan_service"'
VARIABLES = (
    ("namespace", "Namespace", f"label_values({_SERVED}}}, namespace)"),
    ("pod", "Pod", f'label_values({_SERVED}, namespace=~"$namespace"}}, pod)'),
    (
        "model",
        "Model",
        'label_values(gan_images_generated_total{namespace=~"$namespace", pod=~"$pod"}, model)',
    ),
)


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
            "deadline, batcher_overloaded) or abandoned by their client (client_gone). Empty "
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
            "Mean requests BentoML's adaptive batcher merged into one call (GPU path, "
            "GAN_BATCHING=adaptive); each request carries 1..64 images, see the panel above. "
            "Empty with in-process batching (the CPU overlay): that path has no such batcher.",
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


def _variable(name: str, label: str, query: str) -> QueryVariable:
    """Multi-select, `All` by default (the regex .*), refreshed with the time range."""
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def build() -> dict:
    """The dashboard as the JSON object Grafana imports."""
    dash = (
        Dashboard("GAN serving")
        .uid(UID)
        .description("Latency, throughput and batching of the BentoML GAN service.")
        .tags(["gan-serving", "bentoml", "generated"])
        .timezone(TimeZoneBrowser)
        .time("now-1h", "now")
        .refresh("30s")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for name, label, query in VARIABLES:
        dash = dash.with_variable(_variable(name, label, query))
    for i, spec in enumerate(panel_specs()):
        panel = (
            Timeseries()
            .id(i + 1)
            .title(spec.title)
            .description(spec.description)
            .datasource(DATASOURCE)
            .unit(spec.unit)
            .min(0)
            .height(8)
            .span(12)
            .legend(
                VizLegendOptions()
                .display_mode(LegendDisplayMode.TABLE)
                .placement(LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
        )
        if spec.thresholds:
            steps = [Threshold(value=None, color="green")]
            steps += [Threshold(value=v, color=c) for v, c in spec.thresholds]
            panel = panel.thresholds(
                ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
            ).thresholds_style(GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED))
        for ref, q in zip("ABCDEFGH", spec.queries, strict=False):
            panel = panel.with_target(
                Dataquery().ref_id(ref).datasource(DATASOURCE).expr(q.expr).legend_format(q.legend)
            )
        dash = dash.with_panel(panel)
    # A round trip through the SDK's encoder gives plain dicts in Grafana's field names.
    return json.loads(JSONEncoder().encode(dash.build()))


def render_json() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def render_configmap() -> str:
    """The dashboard as a ConfigMap the Grafana sidecar (label grafana_dashboard=1) loads."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "gan-serving-dashboard",
            "labels": {"grafana_dashboard": "1"},
        },
        "data": {JSON_PATH.name: render_json()},
    }
    header = "# Generated by k8s/grafana/dashboard.py; do not edit by hand.\n"
    return header + yaml.dump(configmap, Dumper=_BlockDumper, sort_keys=False, width=1000)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, so the JSON in the ConfigMap stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def outputs() -> dict[Path, str]:
    return {JSON_PATH: render_json(), CONFIGMAP_PATH: render_configmap()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, don't write")
    args = parser.parse_args(argv)
    stale = [p for p, text in outputs().items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path} (run python k8s/grafana/dashboard.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
