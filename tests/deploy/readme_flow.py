"""README "Deploy", followed literally: its shell blocks run in order in one bash session.

The blocks run in a scratch copy of the repository (the working tree is never edited), with
`BENTOML_HOME` moved into it. What needs a cluster, a Docker engine or the standalone
kustomize binary is a shell function that does the offline equivalent and logs the call:

- `make setup`: skipped, this venv is what it makes;
- `.venv/bin/bentoml containerize BENTO -t IMAGE`: writes the Dockerfile `bentoml containerize`
  would build (BentoML's own `get_containerfile`) and checks BENTO exists;
- `docker push IMAGE`: logged;
- `kustomize edit set image NAME=IMAGE`: the same edit of the images: block kustomize makes;
- `kubectl apply -k DIR -n NS`: kubectl's built-in kustomize renders DIR into a file;
  other `kubectl` calls (create namespace, rollout status) are logged.

Any other command runs as written, so a README command that fails here fails for a reader too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import REPO_ROOT

README = REPO_ROOT / "README.md"
# What a fresh clone has that the Deploy commands read (plus the venv they call).
COPIED = ("bentofile.yaml", "bentofile.cpu.yaml", "service", "models", "k8s")
SECTIONS = ("Build the bento", "Containerize and push", "Run on Kubernetes")

STUBS = r"""
set -euo pipefail
make() {
    [ "$*" = setup ] || { echo "unexpected make $*" >&2; return 1; }
    echo "make $*" >> "$FLOW_OUT/log"
}
containerize() {
    local bento="$1"; shift
    [ "$1" = -t ] || { echo "containerize: expected -t" >&2; return 1; }
    local n; n=$(ls "$FLOW_OUT" | grep -c '\.dockerfile$' || true)
    "$FLOW_PY" -c 'import sys, bentoml
bentoml.container.get_containerfile(sys.argv[1], output_path=sys.argv[2])' \
        "$bento" "$FLOW_OUT/$n.dockerfile"
    printf 'containerize\t%s\t%s\t%s\n' "$bento" "$2" "$n.dockerfile" >> "$FLOW_OUT/log"
}
docker() { printf 'docker\t%s\n' "$*" >> "$FLOW_OUT/log"; }
kustomize() { "$FLOW_PY" "$FLOW_KUSTOMIZE_EDIT" "$@"; }
kubectl() {
    if [ "$1" = apply ] && [ "$2" = -k ]; then
        local n; n=$(ls "$FLOW_OUT" | grep -c '\.rendered\.yaml$' || true)
        "$FLOW_KUBECTL" kustomize "$3" > "$FLOW_OUT/$n.rendered.yaml"
        printf 'apply\t%s\t%s\t%s\n' "$3" "${*:4}" "$n.rendered.yaml" >> "$FLOW_OUT/log"
    else
        printf 'kubectl\t%s\n' "$*" >> "$FLOW_OUT/log"
    fi
}
"""

# `kustomize edit set image NAME=NEWNAME[:TAG|@DIGEST]`, as kustomize writes it.
KUSTOMIZE_EDIT = r"""
import sys
from pathlib import Path
import yaml

args = sys.argv[1:]
assert args[:3] == ["edit", "set", "image"] and len(args) == 4, args
name, _, image = args[3].partition("=")
entry = {"name": name}
if "@" in image:
    entry["newName"], entry["digest"] = image.split("@", 1)
else:
    head, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        entry["newName"], entry["newTag"] = head, tag
    else:
        entry["newName"] = image
path = Path("kustomization.yaml")
doc = yaml.safe_load(path.read_text())
images = [i for i in doc.get("images", []) if i["name"] != name]
doc["images"] = images + [entry]
path.write_text(yaml.safe_dump(doc, sort_keys=False))
"""


@dataclass
class Flow:
    root: Path  # the scratch checkout
    home: Path  # BENTOML_HOME the blocks used
    out: Path
    variables: dict[str, str]
    log: list[list[str]] = field(default_factory=list)

    def calls(self, kind: str) -> list[list[str]]:
        return [entry[1:] for entry in self.log if entry[0] == kind]

    def bento_path(self, tag: str) -> Path:
        name, version = tag.split(":")
        return self.home / "bentos" / name / version


def deploy_blocks(readme: str | None = None) -> dict[str, list[str]]:
    """The ```bash blocks of each Deploy subsection, in order."""
    text = readme if readme is not None else README.read_text()
    deploy = text[text.index("\n## Deploy\n") :]
    end = deploy.find("\n## ", 5)
    deploy = deploy if end == -1 else deploy[:end]
    blocks: dict[str, list[str]] = {}
    for section in re.split(r"\n### ", deploy)[1:]:
        title, _, body = section.partition("\n")
        blocks[title.strip()] = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    return blocks


def yaml_blocks(section: str) -> list[str]:
    text = README.read_text()
    deploy = text[text.index("\n## Deploy\n") :]
    part = deploy[deploy.index(f"\n### {section}\n") :]
    part = part[: part.find("\n### ", 5)]
    return re.findall(r"```yaml\n(.*?)```", part, flags=re.S)


def script() -> str:
    """The README's blocks as one bash script, with the offline stand-ins named above."""
    blocks = deploy_blocks()
    missing = [s for s in SECTIONS if not blocks.get(s)]
    assert not missing, f"README Deploy lost its command blocks: {missing}"
    lines = []
    for section in SECTIONS:
        for block in blocks[section]:
            for line in block.splitlines():
                line = line.replace(".venv/bin/bentoml containerize", "containerize")
                lines.append(line)
                if line.startswith("export BENTOML_HOME="):
                    # The README's home, moved into the scratch checkout.
                    lines.append('export BENTOML_HOME="$FLOW_HOME"')
    return "\n".join(lines) + "\n"


def run(workdir: Path, kubectl: str, timeout: float = 420) -> Flow:
    root = workdir / "clone"
    root.mkdir()
    for name in COPIED:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    out = workdir / "out"
    out.mkdir()
    edit = workdir / "kustomize_edit.py"
    edit.write_text(KUSTOMIZE_EDIT)
    home = root / ".bentoml-home"
    body = STUBS + script() + '\nprintf "%s\\n" "GPU_BENTO=$GPU_BENTO" "CPU_BENTO=$CPU_BENTO" '
    body += '"GPU_IMAGE=$GPU_IMAGE" "CPU_IMAGE=$CPU_IMAGE" > "$FLOW_OUT/variables"\n'
    (workdir / "readme.sh").write_text(body)
    env = {
        **os.environ,
        "FLOW_OUT": str(out),
        "FLOW_HOME": str(home),
        "FLOW_PY": sys.executable,
        "FLOW_KUBECTL": kubectl,
        "FLOW_KUSTOMIZE_EDIT": str(edit),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    proc = subprocess.run(
        ["bash", str(workdir / "readme.sh")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"README Deploy commands failed:\n{proc.stdout}\n{proc.stderr}"
    variables = dict(
        line.split("=", 1) for line in (out / "variables").read_text().splitlines() if line
    )
    log = [line.split("\t") for line in (out / "log").read_text().splitlines()]
    return Flow(root=root, home=home, out=out, variables=variables, log=log)
