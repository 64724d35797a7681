"""Tooling shared by tests/ and bench/: servers on loopback (`harness.server_process`,
`harness.live_server`), FP16 model copies (`harness.fp16`), repository paths.

tests/ and bench/ both import harness; harness imports neither of them.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
