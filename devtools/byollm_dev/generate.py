"""Writes every generated file committed in the repository: the CRD (from the API models)
the operator's RBAC and the LLMConfig reference. Unit tests fail when a committed copy is stale.

    python -m byollm_dev.generate [repo root]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

from byollm.api import CRD_NAME, crd_yaml
from byollm_dev import reference
from byollm_dev.rbac import RBAC_PATH, rbac_yaml
from byollm_operator.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
CRD_PATHS: Final = (
    Path("crds") / f"{CRD_NAME}.yaml",
    Path("charts") / "byollm" / "crds" / f"{CRD_NAME}.yaml",
)


OPERATOR_DOC: Final = Path("docs") / "operator.md"
_SETTINGS_HEADING: Final = "## Settings\n"


def settings_table() -> str:
    """Every operator setting: env var, default, meaning (from the Settings model)."""
    rows = ["| env | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default) if isinstance(default, list | dict) else str(default)
        desc = " ".join(str(field.description or "").split())
        rows.append(f"| `BYOLLM_{name.upper()}` | `{shown}` | {desc} |")
    return "\n".join(rows) + "\n"


def operator_doc(current: str) -> str:
    """docs/operator.md with everything after its Settings heading regenerated."""
    head = current.split(_SETTINGS_HEADING, 1)[0]
    return f"{head}{_SETTINGS_HEADING}\n{settings_table()}"


def generated(root: Path = ROOT) -> dict[Path, str]:
    """Each committed generated file (relative path) and the text it must hold."""
    out = {rel: crd_yaml() for rel in CRD_PATHS}
    out[RBAC_PATH] = rbac_yaml()
    out[reference.PATH] = reference.document()
    out[OPERATOR_DOC] = operator_doc((root / OPERATOR_DOC).read_text())
    return out


def write(root: Path) -> list[Path]:
    written = []
    for rel, text in generated(root).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(p)
