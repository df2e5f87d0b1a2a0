"""The LLMConfig field reference in Markdown (``docs/reference.md``), rendered from the
generated CRD: the descriptions ``kubectl explain`` shows are the ones in the docs.
``python -m byollm_dev.generate`` rewrites it; a unit test fails when it is stale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from byollm import api

PATH: Final = Path("docs") / "reference.md"


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = str(node.get("type", "object"))
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return "map"
    return kind


def _rows(node: dict[str, Any], prefix: str) -> Iterator[str]:
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        field = f"{prefix}.{name}"
        default = f"`{json.dumps(child['default'])}`" if "default" in child else ""
        desc = " ".join(str(child.get("description", "")).split()).replace("|", "\\|")
        req = "yes" if name in required else ""
        yield f"| `{field}` | {_type(child)} | {req} | {default} | {desc} |"
        if child.get("type") == "array":
            yield from _rows(child.get("items", {}), field + "[]")
        else:
            yield from _rows(child, field)


def render() -> str:
    """The spec and status tables plus the API server's validation messages."""
    schema = api.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    head = "| field | type | required | default | description |\n|---|---|---|---|---|"
    rules = sorted(
        {
            str(rule["message"])
            for rule in _walk_rules(schema["properties"]["spec"])
            if "message" in rule
        }
    )
    return "\n".join(
        [
            "#### spec",
            "",
            head,
            *_rows(schema["properties"]["spec"], "spec"),
            "",
            "#### status",
            "",
            head,
            *_rows(schema["properties"]["status"], "status"),
            "",
            "#### Validation rules enforced by the API server (CEL)",
            "",
            *(f"- {m}" for m in rules),
        ]
    )


def _walk_rules(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from node.get("x-kubernetes-validations", [])
    for child in node.get("properties", {}).values():
        yield from _walk_rules(child)
    if "items" in node:
        yield from _walk_rules(node["items"])


def document() -> str:
    """The whole docs/reference.md."""
    return (
        "# LLMConfig reference\n\n"
        "Generated from the CRD by `python -m byollm_dev.generate` (a test fails when it is "
        "stale); `kubectl explain llmconfig.spec` shows the same descriptions.\n\n"
        + render()
        + "\n"
    )
