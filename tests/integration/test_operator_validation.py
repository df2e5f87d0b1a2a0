"""The API server itself refuses bad LLMConfigs (schema + CEL), naming the field.

Same table as the pydantic unit tests: tests/unit/data/llmconfig_cases.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_helpers import llmc_path, llmconfig

from byollm.kube import Kube, KubeError

pytestmark = pytest.mark.cluster

CASES = yaml.safe_load(
    (Path(__file__).parents[1] / "unit" / "data" / "llmconfig_cases.yaml").read_text()
)


def _create(kube: Kube, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return kube.request(
        "POST",
        llmc_path(ns),
        body=llmconfig(name, spec),
        query=[("dryRun", "All"), ("fieldValidation", "Strict")],
    )


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["id"])
def test_api_server_refuses(kube: Kube, crd: Any, case: dict[str, Any]) -> None:
    with pytest.raises(KubeError) as err:
        _create(kube, "default", "bad", case["spec"])
    assert err.value.status in (400, 422)
    assert case["field"] in str(err.value), str(err.value)
    print(f"{case['id']}: {err.value}")


@pytest.mark.parametrize("case", CASES["invalid_metadata"], ids=lambda c: c["id"])
def test_api_server_refuses_bad_names(kube: Kube, crd: Any, case: dict[str, Any]) -> None:
    with pytest.raises(KubeError) as err:
        _create(kube, "default", case["name"], {})
    assert case["field"] in str(err.value), str(err.value)


@pytest.mark.parametrize("case", CASES["valid"], ids=lambda c: c["id"])
def test_api_server_accepts(kube: Kube, crd: Any, case: dict[str, Any]) -> None:
    created = _create(kube, "default", "good", case["spec"])
    assert created["spec"]["router"]["replicas"] >= 1  # defaults applied by the schema


def test_invalid_table_size() -> None:
    n = len(CASES["invalid"]) + len(CASES["invalid_metadata"])
    print(f"invalid LLMConfig table: {n} cases")
    assert n >= 20


def _kubectl(control_plane: Any, *args: str) -> str:
    import shutil
    import subprocess

    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [exe, f"--kubeconfig={control_plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_kubectl_explain_documents_fields(control_plane: Any, crd: Any) -> None:
    text = _kubectl(control_plane, "explain", "llmc.spec.provider.baseURL")
    assert "must not name a loopback" in text
    text = _kubectl(control_plane, "explain", "llmc.status.apiKeyPrefix")
    assert "First 8 characters" in text


def _in_default(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["namespace"] = "default"
    return manifest


CANARY = "sk-canary-0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"


def _kubectl_apply(
    control_plane: Any, manifest: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl not installed")
    return subprocess.run(
        [
            exe,
            f"--kubeconfig={control_plane.kubeconfig}",
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
        ],
        input=yaml.safe_dump(manifest),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "api_key",
    [
        {"sealed": CANARY},  # a raw key pasted into the sealed field
        {"sealed": CANARY[:20]},  # short: no minLength message either
        {"sealed": CANARY + " trailing"},
        {"sealed": CANARY * 200},  # longer than maxLength
        {"sealed": CANARY, "secretKeyRef": {"name": "k"}},
        {"secretKeyRef": {"name": CANARY + "_x"}},  # not a Secret name
        {"secretKeyRef": {"name": "k", "key": CANARY + "!"}},  # not a Secret data key
        {"value": CANARY},  # an unknown field
    ],
    ids=[
        "sealed",
        "sealed-short",
        "sealed-space",
        "sealed-long",
        "both",
        "ref-name",
        "ref-key",
        "unknown",
    ],
)
def test_refusal_never_repeats_the_api_key(
    control_plane: Any, crd: Any, api_key: dict[str, Any]
) -> None:
    """kubectl apply of a key in the wrong place: refused, and the key is nowhere in the
    message a terminal, CI log or Argo CD would show."""
    spec = {
        "mode": "BYO",
        "provider": {"type": "openai", "defaultModel": "gpt-4o-mini", "apiKey": api_key},
    }
    res = _kubectl_apply(control_plane, _in_default(llmconfig("leak", spec)))
    assert res.returncode != 0
    print(res.stderr.strip())
    assert "apiKey" in res.stderr
    assert CANARY[:16] not in res.stderr + res.stdout


@pytest.mark.parametrize(
    ("base_url", "words"),
    [
        ("https://api.together.xyz/v1 ", "whitespace"),
        ("https://api.together.xyz/v1\n", "whitespace"),
        ("https://api.openai.com/v1/chat/completions", "drop the trailing"),
        ("https://openrouter.ai/api/v1/models", "https://api.openai.com/v1"),
    ],
)
def test_kubectl_apply_refuses_base_url_mistakes(
    control_plane: Any, crd: Any, base_url: str, words: str
) -> None:
    spec = {
        "mode": "BYO",
        "provider": {
            "type": "custom",
            "baseURL": base_url,
            "defaultModel": "m",
            "apiKey": {"secretKeyRef": {"name": "k"}},
        },
    }
    res = _kubectl_apply(control_plane, _in_default(llmconfig("url", spec)))
    assert res.returncode != 0
    assert "spec.provider.baseURL" in res.stderr, res.stderr
    assert words in res.stderr, res.stderr


def test_no_message_shows_a_regex(kube: Kube, crd: Any) -> None:
    spec = {
        "mode": "BYO",
        "provider": {
            "type": "openai",
            "defaultModel": "gpt 4o",
            "apiKey": {"secretKeyRef": {"name": "k"}},
        },
    }
    with pytest.raises(KubeError) as err:
        _create(kube, "default", "regex", spec)
    assert "model id without whitespace" in str(err.value)
    assert "should match" not in str(err.value)
