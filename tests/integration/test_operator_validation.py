"""The API server itself refuses bad LLMConfigs (schema + CEL), naming the field.

Same table as the pydantic unit tests: tests/unit/data/llmconfig_cases.yaml.
"""

from __future__ import annotations

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
