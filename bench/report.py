"""Render one benchmark run as BENCHMARKS.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.flops import Flops
from bench.inference import InferencePoint
from bench.loadgen import LoadPoint
from bench.profile import Profile
from bench.report_detail import _profile_section, _standin_section, _tail_section
from bench.report_sections import _ceiling_section, _gpu_section, _issue_section, _naive_section
from bench.report_tables import _load_tables, _raw_tables, targets_table
from bench.targets import Target

# The generated part of BENCHMARKS.md sits between these; everything outside them is kept.
BEGIN = "<!-- bench:begin: written by `make bench`; edit outside these markers -->"
END = "<!-- bench:end -->"


@dataclass
class Run:
    started: str
    wall_s: float
    machine: dict[str, object]
    conditions: list[str]
    session_options: str
    load_model: str
    device: str
    seconds_per_point: float
    flops: list[Flops]
    raw: list[InferencePoint]
    load: list[LoadPoint]
    servers: dict[str, str]  # name -> description
    targets: dict[str, list[Target]]  # per service configuration
    notes: list[str] = field(default_factory=list)
    issue: list[Target] = field(default_factory=list)
    standin: Flops | None = None
    standin_raw: list[InferencePoint] = field(default_factory=list)
    standin_load: list[LoadPoint] = field(default_factory=list)
    standin_servers: dict[str, str] = field(default_factory=dict)
    standin_service: str | None = None
    profiles: list[Profile] = field(default_factory=list)
    tail_before: list[LoadPoint] = field(default_factory=list)
    tail_before_env: dict[str, str] = field(default_factory=dict)


def render(run: Run) -> str:
    m = run.machine
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())  # type: ignore[union-attr]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench.run`) on {run.started}, in "
        f"{run.wall_s / 60:.1f} min. Regenerate rather than edit. Benchmarks are "
        "measurements, never pass/fail tests.",
        "",
        "## Conditions",
        "",
        f"- Machine: {m['cpu']}, {m['memory']} RAM, {m['os']}, Python {m['python']}",
        f"- Versions: {versions}",
        f"- ONNX Runtime providers available: {m['ort_providers']}",
        f"- Commit: {m['commit']}",
        f"- Session options (from `service.engine.Engine`): {run.session_options}",
        f"- Load model: `{run.load_model}` on {run.device}; {run.seconds_per_point:g} s per "
        "load point after a 1 s warm-up at the same concurrency; closed-loop clients "
        "(`bench/loadgen.py`, aiohttp, loopback) running on the same machine as the server; "
        "a client answered 503 waits the `Retry-After` it was given (errors count those 503s). "
        "Every server of a table runs from the start of its sweep; each load point is "
        "measured on all of them back to back, in an order rotated from point to point "
        "(`bench/sweep.py`), so a ratio between two servers compares windows seconds apart.",
        *[f"- {c}" for c in run.conditions],
        "",
        *_issue_section(run),
        *_ceiling_section(run),
        *_naive_section(run),
        *_profile_section(run),
        *_standin_section(run),
        *_tail_section(run),
        "## Limit targets",
        "",
        "Limit at a load = min(raw ORT images/s at the batch size the service actually "
        "formed, read from `/metrics`; bare server requests/s × images per request).",
        "",
        *[
            line
            for name, table in run.targets.items()
            for line in (f"**{name}** ({run.servers[name]})", "", *targets_table(table), "")
        ],
        *(["What explains them (measured in the same run):", ""] if run.notes else []),
        *[f"- {n}" for n in run.notes],
        *([""] if run.notes else []),
        "## Raw ONNX Runtime `session.run` (the limit)",
        "",
        "Images/s and median latency per call, inputs prepared outside the timed region.",
        "",
        *_raw_tables(run.raw),
        "## Servers under load",
        "",
        *[f"- **{k}**: {v}" for k, v in run.servers.items()],
        "",
        *_load_tables(run.load),
        *_gpu_section(run),
    ]
    return "\n".join(lines)


def merge(existing: str, generated: str) -> str:
    """BENCHMARKS.md with its generated part replaced and everything else kept.

    With markers, what lies outside them stays as it is. Without (a file from before the
    markers), the old generated part is dropped and every `## ` section whose heading the
    generator does not write is kept after the end marker.
    """
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}\n"
    if BEGIN in existing and END in existing:
        head, _, rest = existing.partition(BEGIN)
        _, _, tail = rest.partition(END)
        tail = tail.lstrip("\n")
        return head + block + ("\n" + tail if tail else "")
    ours = {line for line in generated.splitlines() if line.startswith("## ")}
    kept: list[str] = []
    keeping = fenced = False
    for line in existing.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            pass  # a `# comment` in a code block is no heading
        elif line.startswith("## "):
            keeping = line not in ours and not _legacy_heading(line)
        elif line.startswith("# "):
            keeping = False
        if keeping:
            kept.append(line)
    return block + ("\n" + "\n".join(kept).rstrip() + "\n" if kept else "")


def _legacy_heading(line: str) -> bool:
    """Headings the generator wrote before it had markers."""
    return line in (
        "## Conditions",
        "## Targets",
        "## Raw ONNX Runtime `session.run` (the limit)",
        "## Servers under load",
        "## GPU",
    )
