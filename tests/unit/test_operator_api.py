"""The LLMConfig models and the CRD generated from them (no cluster needed).

The same case table (tests/unit/data/llmconfig_cases.yaml) is run against the real API
server in tests/integration/test_operator_validation.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from byollm import api
from byollm_dev import generate
from byollm_router.contract import Category, Mode, ProviderType

ROOT = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((Path(__file__).parent / "data" / "llmconfig_cases.yaml").read_text())


@pytest.mark.parametrize("rel", list(generate.generated()), ids=str)
def test_committed_generated_files_are_fresh(rel: Path) -> None:
    assert (ROOT / rel).read_text() == generate.generated()[rel], (
        f"{rel} is stale: run `python -m byollm_dev.generate` at the repo root"
    )


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _walk(schema["additionalProperties"], f"{path}{{}}")
    return out


def _root() -> dict[str, Any]:
    root: dict[str, Any] = api.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def test_every_spec_and_status_field_is_described() -> None:
    root = _root()
    for top in ("spec", "status"):
        for path, node in _walk(root["properties"][top], top):
            if path.endswith(("{}", "[]")) and node.get("type") == "string":
                continue  # map values / list items of plain strings
            assert node.get("description"), f"{path} has no description (kubectl explain)"


def test_schema_is_structural() -> None:
    for path, node in _walk(_root()):
        assert "$ref" not in node, path
        assert "title" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node, f"{path} has no type"


def test_crd_shape() -> None:
    crd = api.crd_manifest()
    assert crd["metadata"]["name"] == "llmconfigs.byollm.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "LLMConfig",
        "llmconfigs",
        ["llmc"],
    )
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    cols = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0]
    assert cols == ["Mode", "Provider", "Model", "Ready", "Age"]
    ready = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_enums_come_from_the_router_contract() -> None:
    spec = _root()["properties"]["spec"]["properties"]
    assert spec["provider"]["properties"]["type"]["enum"] == [p.value for p in ProviderType]
    assert spec["mode"]["enum"] == [m.value for m in Mode]
    models = spec["routing"]["properties"]["models"]["properties"]
    assert list(models) == [c.value for c in Category]


def test_every_cel_message_names_a_field() -> None:
    for path, node in _walk(_root()):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].startswith(("spec.", "metadata.")), (path, rule["message"])


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["id"])
def test_models_refuse_invalid(case: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        api.LLMConfigSpec.model_validate(case["spec"])
    text = str(err.value)
    last = case["field"].rsplit(".", 1)[-1].split("[")[0]
    assert case["field"] in text or last in text, text


@pytest.mark.parametrize("case", CASES["valid"], ids=lambda c: c["id"])
def test_models_accept_valid(case: dict[str, Any]) -> None:
    api.LLMConfigSpec.model_validate(case["spec"])


def test_invalid_table_is_large_enough() -> None:
    assert len(CASES["invalid"]) + len(CASES["invalid_metadata"]) >= 20


def test_serving_mode_and_defaults() -> None:
    spec = api.LLMConfigSpec.model_validate({})
    assert spec.mode is Mode.MANAGED
    assert spec.serving_mode() is Mode.MANAGED
    byo = CASES["valid"][3]["spec"]
    assert api.LLMConfigSpec.model_validate(byo).serving_mode() is Mode.BYO
    inactive = api.LLMConfigSpec.model_validate({**byo, "active": False})
    assert inactive.serving_mode() is Mode.MANAGED
    assert inactive.provider is not None
    assert inactive.provider.effective_base_url() == "https://openrouter.ai/api/v1"


def test_sealed_pattern_matches_sealing_module() -> None:
    sealing = pytest.importorskip("byollm.sealing")
    assert api.SEALED_RE == sealing.SEALED_PATTERN


def test_api_key_fields_have_no_value_echoing_rule() -> None:
    """A raw key pasted under ``apiKey`` must never be repeated by the API server: the
    errors of ``pattern``/``minLength`` and of a CEL rule on a string field show the value;
    a rule on the enclosing object shows only the type."""
    spec = api.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    api_key = spec["properties"]["spec"]["properties"]["provider"]["properties"]["apiKey"]
    for path, node in _walk(api_key):
        if node.get("type") == "string":
            assert not {"pattern", "minLength", "x-kubernetes-validations"} & set(node), path
    messages = [r["message"] for r in api_key["x-kubernetes-validations"]]
    assert any(m.startswith("spec.provider.apiKey.sealed: is not a sealed value") for m in messages)


def test_no_crd_message_shows_a_regex() -> None:
    """Messages say in words what is wrong; a regex belongs in the rule only."""
    root = api.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for _, node in _walk(root):
        for r in node.get("x-kubernetes-validations", []):
            assert "^" not in r["message"], r["message"]
            assert "\\" not in r["message"], r["message"]
    assert "pattern: ^\\S+$" not in api.crd_yaml()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://api.together.xyz/v1 ", "whitespace"),
        ("https://api.together.xyz/v1\t", "whitespace"),
        ("https://api.together.xyz/\u2003v1", "whitespace"),
        ("https://api.openai.com/v1/chat/completions", "drop the trailing"),
        ("https://api.openai.com/v1/models/", "https://api.openai.com/v1"),
    ],
)
def test_base_url_problem_says_what_is_wrong(url: str, words: str) -> None:
    problem = api.base_url_problem(url)
    assert problem is not None
    assert words in problem
    with pytest.raises(ValidationError) as err:
        api.ProviderSpec.model_validate({"type": "custom", "baseURL": url})
    assert words in str(err.value)
