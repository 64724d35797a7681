"""Write a generator script's files, or with --check list the stale ones and exit 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_or_check(
    outputs: dict[Path, str], doc: str | None, script: str, argv: list[str] | None = None
) -> int:
    """The `main` of k8s/grafana/dashboard.py and k8s/prometheus/alerts.py."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, don't write")
    args = parser.parse_args(argv)
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path} (run python {script})", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0
