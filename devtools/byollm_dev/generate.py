"""Writes every generated file committed in the repository: the CRD (from the API models)
the operator's RBAC and the LLMConfig reference. Unit tests fail when a committed copy is stale.

    python -m byollm_dev.generate [repo root]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from byollm.api import CRD_NAME, crd_yaml
from byollm_dev import reference
from byollm_dev.rbac import RBAC_PATH, rbac_yaml

CRD_PATHS: Final = (
    Path("crds") / f"{CRD_NAME}.yaml",
    Path("charts") / "byollm" / "crds" / f"{CRD_NAME}.yaml",
)


def generated() -> dict[Path, str]:
    """Each committed generated file (relative path) and the text it must hold."""
    out = {rel: crd_yaml() for rel in CRD_PATHS}
    out[RBAC_PATH] = rbac_yaml()
    out[reference.PATH] = reference.document()
    return out


def write(root: Path) -> list[Path]:
    written = []
    for rel, text in generated().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()):
        print(p)
