"""The service's Prometheus alert rules, written out twice from this one definition.

    python k8s/prometheus/alerts.py          # rewrite both generated files
    python k8s/prometheus/alerts.py --check  # exit 1 if they differ from what this builds

- k8s/prometheus/alerts.rules.yaml: a plain rules file for `rule_files:` of prometheus.yml
  (clusters without the Prometheus Operator);
- k8s/components/prometheus-operator/prometheusrule.yaml: the same groups as a PrometheusRule.

The thresholds are constants here; k8s/grafana/dashboard.py draws the same ones on its panels.
tests/deploy/alerts_test.yaml (`promtool test rules`) feeds series and expects each alert to
fire, and to stay quiet below its threshold.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
# k8s/generated_files.py by path: this file runs as a script, and is loaded by path.
sys.path.insert(0, str(HERE.parent))
from generated_files import write_or_check  # noqa: E402

RULES_PATH = HERE / "alerts.rules.yaml"
PROMETHEUSRULE_PATH = HERE.parent / "components" / "prometheus-operator" / "prometheusrule.yaml"

JOB = 'job="gan-serving"'  # the plain scrape job's name, and the Service's for a ServiceMonitor
# The public service only (with adaptive batching the internal gan_generator service reports
# its /generate_batch calls too), without the health and scrape routes.
API = f'{JOB}, service_name="gan_service", endpoint!~"/metrics|/livez|/readyz|/healthz"'
WINDOW = "5m"

# Thresholds, shared with the dashboard.
ERROR_RATIO = 0.01  # 5xx share of API requests
LATENCY_WARN_S = 1.0  # p99 per endpoint
LATENCY_PAGE_S = 2.0
IN_FLIGHT_PER_POD = 16  # requests in progress per pod (the optional HPA targets 8)
QUEUE_P99_S = 1.0  # gan_queue_seconds p99 per model
SHED_PER_S = 0.05  # 503s shed under overload, per second (3 a minute)

RUNBOOK = "README.md, section Deploy / Dashboard, alerts"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str  # "page" wakes someone; "warning" is for working hours
    summary: str
    description: str


def _p99(histogram: str, by: str, selector: str) -> str:
    return (
        f"histogram_quantile(0.99, sum by ({by}, le) "
        f"(rate({histogram}_bucket{{{selector}}}[{WINDOW}])))"
    )


def alerts() -> list[Alert]:
    errors = f'sum by (namespace) (rate(bentoml_service_request_total{{{API}, http_response_code=~"5.."}}[{WINDOW}]))'  # noqa: E501
    requests = f"sum by (namespace) (rate(bentoml_service_request_total{{{API}}}[{WINDOW}]))"
    latency = _p99("bentoml_service_request_duration_seconds", "namespace, endpoint", API)
    return [
        Alert(
            "GanServingTargetDown",
            f"up{{{JOB}}} == 0",
            "5m",
            "page",
            "gan-serving pod {{ $labels.namespace }}/{{ $labels.pod }} cannot be scraped",
            "Prometheus has failed to scrape this pod's /metrics for 5 minutes: the pod is "
            "down, not ready to answer, or the scrape configuration no longer reaches it.",
        ),
        Alert(
            "GanServingTargetMissing",
            f"absent(up{{{JOB}}})",
            "10m",
            "page",
            "No gan-serving scrape target at all",
            "Prometheus has no target for job gan-serving: no pod runs, or service discovery "
            "(ServiceMonitor release label, pod annotations, scrape job) does not find them.",
        ),
        Alert(
            "GanServingHighErrorRate",
            f"{errors} / {requests} > {ERROR_RATIO}",
            "5m",
            "page",
            "gan-serving answers more than 1% of requests with 5xx in {{ $labels.namespace }}",
            "{{ $value | humanizePercentage }} of API requests got a 5xx over 5 minutes. 503 is "
            "overload (see GanServingShedding); other 5xx are failures: read the pod logs.",
        ),
        Alert(
            "GanServingLatencyHigh",
            f"{latency} > {LATENCY_WARN_S}",
            "10m",
            "warning",
            "gan-serving p99 latency of {{ $labels.endpoint }} above 1 s",
            "p99 of {{ $labels.endpoint }} in {{ $labels.namespace }} is "
            "{{ $value | humanizeDuration }}. Check saturation (requests in progress, queue "
            "time) and whether models fell back to the CPU provider (GET /models).",
        ),
        Alert(
            "GanServingLatencyCritical",
            f"{latency} > {LATENCY_PAGE_S}",
            "5m",
            "page",
            "gan-serving p99 latency of {{ $labels.endpoint }} above 2 s",
            "p99 of {{ $labels.endpoint }} in {{ $labels.namespace }} is "
            "{{ $value | humanizeDuration }}.",
        ),
        Alert(
            "GanServingSaturated",
            f"sum by (namespace, pod) (bentoml_service_request_in_progress{{{API}}}) "
            f"> {IN_FLIGHT_PER_POD}",
            "5m",
            "warning",
            "gan-serving pod {{ $labels.pod }} has more than 16 requests in flight",
            "{{ $value }} requests in progress on {{ $labels.namespace }}/{{ $labels.pod }} for "
            "5 minutes: the pod is saturated. Check that the HPA can add pods (max replicas, "
            "free GPUs).",
        ),
        Alert(
            "GanServingQueueSlow",
            f"{_p99('gan_queue_seconds', 'namespace, model', JOB)} > {QUEUE_P99_S}",
            "5m",
            "warning",
            "gan-serving requests for {{ $labels.model }} wait more than 1 s for a batch",
            "p99 queue time of {{ $labels.model }} in {{ $labels.namespace }} is "
            "{{ $value | humanizeDuration }}: "
            "batches are full or inference is slow; the adaptive path sheds past "
            "GAN_MAX_LATENCY_MS.",
        ),
        Alert(
            "GanServingShedding",
            # client_gone counts requests whose client left (never computed, no 503 sent).
            "sum by (namespace, reason) (rate(gan_rejected_requests_total"
            f'{{{JOB}, reason!="client_gone"}}[{WINDOW}])) > {SHED_PER_S}',
            "10m",
            "warning",
            "gan-serving sheds requests with 503 ({{ $labels.reason }})",
            '{{ printf "%.2f" $value }} requests/s in {{ $labels.namespace }} rejected under '
            "overload for 10 minutes: add capacity (HPA max replicas, GPUs) or find the "
            "traffic source.",
        ),
    ]


def groups() -> list[dict]:
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            "for": a.duration,
            "labels": {"severity": a.severity, "service": "gan-serving"},
            "annotations": {
                "summary": a.summary,
                "description": a.description,
                "runbook": RUNBOOK,
            },
        }
        for a in alerts()
    ]
    return [{"name": "gan-serving", "rules": rules}]


HEADER = "# Generated by k8s/prometheus/alerts.py; do not edit by hand.\n"


def render_rules() -> str:
    return HEADER + yaml.safe_dump({"groups": groups()}, sort_keys=False, width=4096)


def render_prometheusrule() -> str:
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "gan-serving",
            "labels": {
                "app.kubernetes.io/name": "gan-serving",
                "app.kubernetes.io/part-of": "gan-serving",
                # kube-prometheus-stack's ruleSelector, like the ServiceMonitor's.
                "release": "prometheus",
            },
        },
        "spec": {"groups": groups()},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=4096)


def outputs() -> dict[Path, str]:
    return {RULES_PATH: render_rules(), PROMETHEUSRULE_PATH: render_prometheusrule()}


def main(argv: list[str] | None = None) -> int:
    return write_or_check(outputs(), __doc__, "k8s/prometheus/alerts.py", argv)


if __name__ == "__main__":
    sys.exit(main())
