"""The portal SDK on the real API server, with the operator running: a tenant's whole life.

set (Secret + LLMConfig together) -> wait_ready -> change the model without resending the
key -> toggle off/on -> revert to managed (key wiped) -> delete; and refusals that carry
the API server's own message and field path.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from kubernetes import client

from byollm.client import (
    AsyncLLMConfigClient,
    LLMConfigClient,
    LLMConfigView,
    NotFoundError,
    NotReadyError,
    ValidationError,
    key_secret_name,
)

pytestmark = pytest.mark.cluster


def _until(view_of: Any, pred: Any, timeout: float = 60) -> LLMConfigView:
    deadline = time.monotonic() + timeout
    while True:
        view = view_of()
        if pred(view):
            return view  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {view}")
        time.sleep(0.3)


def _secret(k8s_api: Any, ns: str, name: str) -> dict[str, str] | None:
    try:
        s = client.CoreV1Api(k8s_api).read_namespaced_secret(name, ns)
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}


def test_lifecycle(
    k8s_api: Any, namespace: str, running_operator: Any, stub_provider: dict[str, Any]
) -> None:
    sdk = LLMConfigClient(k8s_api, namespace)
    key = stub_provider["key"]
    base_url = f"http://stub.{namespace}.svc:{stub_provider['port']}/v1"

    view = sdk.set("acme", provider="custom", base_url=base_url, api_key=key, default_model="m-1")
    assert view.mode == "BYO"
    stored = _secret(k8s_api, namespace, key_secret_name("acme"))
    assert stored == {"apiKey": key}

    view = sdk.wait_ready("acme", timeout=90)
    assert (view.serving_mode, view.provider, view.model) == ("BYO", "custom", "m-1")
    assert view.api_key_prefix == key[:8]
    assert view.endpoint == f"http://acme-router.{namespace}.svc:8080/v1"
    assert {c.type for c in view.conditions} >= {"Ready", "SecretSynced", "RouterAvailable"}
    assert key not in repr(view)
    assert key not in repr(sdk.list())

    # Change only the model: the stored key is kept.
    view = sdk.set("acme", provider="custom", base_url=base_url, default_model="m-2")
    view = sdk.wait_ready("acme", timeout=60)
    assert view.model == "m-2"
    assert _secret(k8s_api, namespace, key_secret_name("acme")) == {"apiKey": key}

    # Toggle: keep the config, serve Managed; and back.
    sdk.toggle("acme", False)
    view = _until(lambda: sdk.get("acme"), lambda v: v.ready and v.serving_mode == "Managed")
    assert view.mode == "BYO"
    assert view.active is False
    llm = _secret(k8s_api, namespace, "acme-llm") or {}
    assert "LLM_API_KEY" not in llm
    assert llm["LLM_MODE"] == "Managed"
    sdk.toggle("acme", True)
    _until(lambda: sdk.get("acme"), lambda v: v.ready and v.serving_mode == "BYO")

    # Revert to managed: the four BYO keys are wiped and the stored key is deleted.
    sdk.revert_to_managed("acme")
    view = _until(lambda: sdk.get("acme"), lambda v: v.ready and v.serving_mode == "Managed")
    assert view.mode == "Managed"
    assert view.api_key_prefix is None
    assert _secret(k8s_api, namespace, key_secret_name("acme")) is None
    llm = _secret(k8s_api, namespace, "acme-llm") or {}
    assert not {"LLM_PROVIDER", "LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL"} & set(llm)

    sdk.delete("acme")
    with pytest.raises(NotFoundError):
        _until(lambda: sdk.get("acme"), lambda v: False, timeout=0)


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        (
            {"provider": "custom", "base_url": "https://169.254.169.254/v1"},
            "spec.provider.baseURL",
            "metadata",
        ),
        ({"provider": "custom"}, "spec.provider.baseURL", "required when spec.provider.type"),
        ({"provider": "bedrock"}, "spec.provider.type", "Unsupported value"),
        (
            {"provider": "openai", "base_url": "http://api.example.com/v1"},
            "spec.provider.baseURL",
            "https",
        ),
    ],
)
def test_refusals_carry_the_api_servers_field_message(
    k8s_api: Any, namespace: str, crd: Any, kwargs: dict[str, Any], field: str, text: str
) -> None:
    sdk = LLMConfigClient(k8s_api, namespace)
    with pytest.raises(ValidationError) as exc:
        sdk.set("bad", api_key="sk-secret-value-123", default_model="m", **kwargs)
    assert exc.value.field.startswith(field), exc.value.causes
    assert text in str(exc.value)
    assert "sk-secret-value-123" not in str(exc.value)
    # Dry-run first: nothing was written, not even the key Secret.
    assert _secret(k8s_api, namespace, key_secret_name("bad")) is None
    with pytest.raises(NotFoundError):
        sdk.get("bad")


def test_sdk_argument_errors(k8s_api: Any, namespace: str, crd: Any) -> None:
    sdk = LLMConfigClient(k8s_api, namespace)
    with pytest.raises(ValidationError) as exc:
        sdk.set("nokey", provider="openai", default_model="gpt-4o-mini")
    assert exc.value.field == "api_key"
    with pytest.raises(NotFoundError):
        sdk.toggle("missing", False)
    with pytest.raises(NotReadyError) as nr:
        sdk.wait_ready("missing", timeout=0.5)
    assert nr.value.view is None


async def test_async_client(
    k8s_api: Any, namespace: str, running_operator: Any, stub_provider: dict[str, Any]
) -> None:
    sdk = AsyncLLMConfigClient(k8s_api, namespace)
    base_url = f"http://stub.{namespace}.svc:{stub_provider['port']}/v1"
    await sdk.set(
        "a", provider="custom", base_url=base_url, api_key=stub_provider["key"], default_model="m"
    )
    view = await sdk.wait_ready("a", timeout=90)
    assert view.api_key_prefix == stub_provider["key"][:8]
    assert [v.name for v in await sdk.list()] == ["a"]
    with pytest.raises(ValidationError):
        await sdk.set("a", provider="custom", base_url="https://10.0.0.1/v1", default_model="m")
    await sdk.delete("a")
    with pytest.raises(NotFoundError):
        await sdk.get("a")
