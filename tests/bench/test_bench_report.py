"""BENCHMARKS.md: `make bench` rewrites its own part and keeps every other section."""

from __future__ import annotations

from bench.report import BEGIN, END, merge

GENERATED = "# Benchmarks\n\n## Conditions\n\nnew run\n"


def test_merge_replaces_only_the_part_between_the_markers() -> None:
    existing = (
        "Intro kept.\n\n"
        f"{BEGIN}\n# Benchmarks\n\nold run\n{END}\n\n"
        "## Overload and soak\n\nsoak table\n\n## Jobs\n\njobs table\n"
    )
    merged = merge(existing, GENERATED)
    assert merged.startswith("Intro kept.\n\n" + BEGIN)
    assert "new run" in merged and "old run" not in merged
    assert merged.index(END) < merged.index("## Overload and soak") < merged.index("## Jobs")
    assert "soak table" in merged and "jobs table" in merged
    assert merge(merged, GENERATED) == merged  # a second run changes nothing


def test_merge_of_a_file_without_markers_keeps_sections_it_does_not_write() -> None:
    existing = (
        "# Benchmarks\n\n## Conditions\n\nold\n\n## Targets\n\nold targets\n\n"
        "## Jobs\n\njobs table\n\n```bash\n# a comment, no heading\n```\n\n## GPU\n\nold gpu\n"
    )
    merged = merge(existing, GENERATED)
    assert merged.startswith(BEGIN)
    assert "old" not in merged.replace("jobs table", "")
    assert merged.index(END) < merged.index("## Jobs\n\njobs table")
    assert "# a comment, no heading" in merged


def test_merge_into_an_empty_file() -> None:
    assert merge("", GENERATED) == f"{BEGIN}\n{GENERATED.rstrip()}\n{END}\n"
