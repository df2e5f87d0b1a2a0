"""JSON schemas for kubeconform, generated offline from a running API server's OpenAPI v2.

kubeconform normally downloads schemas from GitHub; this machine (and CI) cannot. The API
server publishes the very same OpenAPI (built-in kinds *and* installed CRDs such as
LLMConfig), so we convert it the way kubeconform's openapi2jsonschema does: one standalone
file per kind with the referenced definitions embedded, int-or-string/Quantity widened, and
``additionalProperties: false`` on closed objects for ``-strict``.

Layout matches ``SCHEMA_LOCATION``: ``<dir>/<group>/<version>/<kind>.json`` (core kinds:
``<dir>/v1/v1/<kind>.json``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SCHEMA_LOCATION = (
    "{dir}/{{{{ .Group }}}}/{{{{ .ResourceAPIVersion }}}}/{{{{ .ResourceKind }}}}.json"
)
_WIDE = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "oneOf": [{"type": "string"}, {"type": "integer"}]
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    },
}


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            out.add(ref.removeprefix("#/definitions/"))
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)


def _fix(node: Any, strict: bool) -> Any:
    if isinstance(node, dict):
        node = {
            k: {n: _fix(p, strict) for n, p in v.items()}
            if k in ("properties", "definitions") and isinstance(v, dict)
            else _fix(v, strict)
            for k, v in node.items()
        }
        if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string") is True:
            return {k: v for k, v in node.items() if k not in ("type", "format")} | {
                "oneOf": [{"type": "string"}, {"type": "integer"}]
            }
        if (
            strict
            and node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_fix(v, strict) for v in node]
    return node


def write_schemas(openapi: dict[str, Any], out: Path, strict: bool = True) -> int:
    """Write one schema per group/version/kind; return how many were written."""
    defs: dict[str, Any] = copy.deepcopy(openapi["definitions"])
    defs.update(copy.deepcopy(_WIDE))
    fixed = {name: _fix(d, strict) for name, d in defs.items()}
    count = 0
    for name, definition in fixed.items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
            needed: set[str] = set()
            todo = {name}
            while todo:
                cur = todo.pop()
                if cur in needed:
                    continue
                needed.add(cur)
                found: set[str] = set()
                _refs(fixed.get(cur, {}), found)
                todo |= found - needed
            schema = dict(definition)
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["definitions"] = {n: fixed[n] for n in sorted(needed) if n in fixed}
            path = out / (group or version) / version / f"{kind.lower()}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema))
            count += 1
    return count
