"""How GitOps tools judge an LLMConfig, run for real in tests.

* Argo CD: ``deploy/argocd/health.lua`` in a real Lua 5.1 interpreter (lupa embeds it; Argo
  CD's gopher-lua is 5.1 too), with ``obj`` set as a global and only the libraries Argo CD
  opens for health scripts (base, string, table, math): a script reaching for ``os``,
  ``io`` or ``require`` fails here as it would there.
* Flux: the kstatus library (github.com/fluxcd/cli-utils) through the small wrapper
  ``hack/tools/kstatus`` that ``hack/tools.sh`` builds (``tool("kstatus")``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "deploy" / "argocd" / "health.lua"
UNSAFE_GLOBALS = (
    "os", "io", "debug", "package", "require", "module",
    "load", "loadstring", "loadfile", "dofile", "collectgarbage",
)  # fmt: skip


def _plain(value: Any) -> Any:
    """JSON-like value without nulls (Argo CD's conversion leaves them out: nil)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not None]
    return value


def argocd_health(obj: dict[str, Any], script: str | None = None) -> dict[str, str]:
    """{"status": ..., "message": ...} as Argo CD's health check computes it for ``obj``."""
    rt = lua51.LuaRuntime(unpack_returned_tuples=True)
    g = rt.globals()
    for name in UNSAFE_GLOBALS:
        g[name] = None
    g.obj = rt.table_from(_plain(obj), recursive=True)
    fn = rt.execute(f"return function() {script or HEALTH_LUA.read_text()}\nend")
    hs = fn()
    return {"status": hs["status"], "message": hs["message"]}


def kstatus(binary: str, obj: dict[str, Any]) -> dict[str, str]:
    """{"status": Current|InProgress|Failed|..., "message": ...} as Flux's kstatus says."""
    (out,) = kstatus_many(binary, [obj])
    return out


def kstatus_many(binary: str, objs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """kstatus verdicts for many objects in one run of the wrapper."""
    res = subprocess.run(
        [binary],
        input="".join(json.dumps(o) + "\n" for o in objs),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in res.stdout.splitlines()]
