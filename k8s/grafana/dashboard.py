"""Generate the Grafana dashboard for the GAN service, and its ConfigMap for Grafana's sidecar.

    python k8s/grafana/dashboard.py          # rewrite the two committed files
    python k8s/grafana/dashboard.py --check  # exit 1 if they differ from what this builds

The panels are built with grafana-foundation-sdk so every query lives here as code;
tests/deploy/test_deploy_prometheus.py runs each of them against a real Prometheus. The
variables namespace, pod and model scope every query, so environments sharing one Prometheus
stay apart; thresholds come from the alert rules' source, k8s/prometheus/alerts.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
# Siblings by path: this file runs as a script, and tests load it by path.
sys.path[:0] = [str(HERE), str(HERE.parent)]
from generated_files import write_or_check  # noqa: E402
from panels import panel_specs  # noqa: E402

JSON_PATH = HERE / "gan-serving-dashboard.json"
CONFIGMAP_PATH = HERE / "gan-serving-dashboard.configmap.yaml"
UID = "gan-serving"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
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
    return write_or_check(outputs(), __doc__, "k8s/grafana/dashboard.py", argv)


if __name__ == "__main__":
    sys.exit(main())
