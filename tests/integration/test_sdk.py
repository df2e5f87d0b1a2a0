"""The portal SDK on the real API server, with the operator running: a tenant's whole life.

create (Secret + LLMConfig together) -> wait_ready -> update only the model (routing,
``active`` and a custom base URL keep their values, the key is not sent again) -> toggle
off/on (each returns the state after the operator acted; the key prefix stays visible) ->
revert to managed (key wiped) -> delete; refusals carry the field path and never the key.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from operator_helpers import llmconfig

import byollm
from byollm.kube import Kube

pytestmark = pytest.mark.cluster

CANARY = "sk-canary-sdk-7f6e5d4c3b2a19080706"


def _secret(k8s_api: Any, ns: str, name: str) -> dict[str, str] | None:
    try:
        s = client.CoreV1Api(k8s_api).read_namespaced_secret(name, ns)
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}


def _stub_url(namespace: str, stub_provider: dict[str, Any], path: str = "/v1") -> str:
    return f"http://stub.{namespace}.svc:{stub_provider['port']}{path}"


def test_lifecycle(
    k8s_api: Any, namespace: str, running_operator: Any, stub_provider: dict[str, Any]
) -> None:
    llm = byollm.Client(namespace, api_client=k8s_api)
    key = stub_provider["key"]
    base_url = _stub_url(namespace, stub_provider)
    routing = {"auto": True, "models": {"fast": "m-fast", "code": "m-code"}}

    view = llm.create(
        "acme",
        provider="custom",
        base_url=base_url,
        api_key=key,
        default_model="m-1",
        routing=routing,
        wait=True,
        timeout=90,
    )
    assert (view.serving_mode, view.provider, view.model) == ("BYO", "custom", "m-1")
    assert _secret(k8s_api, namespace, byollm.key_secret_name("acme")) == {"apiKey": key}
    assert view.api_key_prefix == key[:8]
    assert view.endpoint == f"http://acme-router.{namespace}.svc:8080/v1"
    assert {c.type for c in view.conditions} >= {"Ready", "SecretSynced", "RouterAvailable"}
    assert key not in repr(view)
    assert key not in repr(llm.list())
    with pytest.raises(byollm.AlreadyExistsError):
        llm.create("acme", provider="openai", default_model="x", api_key=key)

    # Toggle off: returns once the operator serves Managed; the BYO config is kept and the
    # key is still identified by its prefix.
    view = llm.toggle("acme", False)
    assert (view.serving_mode, view.active, view.mode) == ("Managed", False, "BYO")
    assert view.ready
    assert view.api_key_prefix == key[:8]
    llm_env = _secret(k8s_api, namespace, "acme-llm") or {}
    assert "LLM_API_KEY" not in llm_env

    # Change only the model while toggled off: routing, active and the custom base URL keep
    # their values; the key is not sent again.
    view = llm.update("acme", default_model="m-2", wait=True)
    assert view.model == "m-2"
    assert view.active is False
    assert view.serving_mode == "Managed"
    assert view.base_url == base_url
    assert view.spec.routing.auto is True
    assert view.spec.routing.models.code == "m-code"
    assert _secret(k8s_api, namespace, byollm.key_secret_name("acme")) == {"apiKey": key}

    # Back on: BYO served with the new model.
    view = llm.toggle("acme", True)
    assert (view.serving_mode, view.model) == ("BYO", "m-2")
    assert view.ready
    assert (_secret(k8s_api, namespace, "acme-llm") or {})["LLM_MODEL"] == "m-2"

    # routing merges: one category changed, one removed, the rest kept.
    view = llm.update("acme", routing={"models": {"fast": "m-fast-2", "code": None}})
    assert view.spec.routing.models.fast == "m-fast-2"
    assert view.spec.routing.models.code is None
    assert view.spec.routing.auto is True

    # Revert to managed: the four BYO keys are wiped and the stored key is deleted.
    view = llm.revert_to_managed("acme")
    assert (view.mode, view.serving_mode) == ("Managed", "Managed")
    assert view.ready
    assert view.api_key_prefix is None
    assert _secret(k8s_api, namespace, byollm.key_secret_name("acme")) is None
    llm_env = _secret(k8s_api, namespace, "acme-llm") or {}
    assert not {"LLM_PROVIDER", "LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL"} & set(llm_env)

    llm.delete("acme")
    with pytest.raises(byollm.NotFoundError):
        llm.get("acme")


def test_update_keeps_fields_written_by_others(
    k8s_api: Any, kube: Kube, namespace: str, crd: Any
) -> None:
    """A GitOps-made object (kubectl apply, another field manager): an SDK update of the
    model leaves the rest as it was, and a replace states everything."""
    kube.apply(
        llmconfig(
            "gitops",
            {
                "mode": "BYO",
                "active": False,
                "provider": {
                    "type": "custom",
                    "baseURL": "https://api.together.xyz/v1",
                    "defaultModel": "m-1",
                    "apiKey": {"secretKeyRef": {"name": "together"}},
                },
                "routing": {"auto": True, "models": {"fast": "m-fast"}},
                "router": {"replicas": 2},
            },
            namespace,
        ),
        field_manager="kubectl",
    )
    llm = byollm.Client(namespace, api_client=k8s_api)
    view = llm.update("gitops", default_model="m-2")
    assert view.model == "m-2"
    assert view.active is False
    assert view.base_url == "https://api.together.xyz/v1"
    assert view.spec.routing.models.fast == "m-fast"
    assert view.spec.router.replicas == 2
    assert view.spec.provider is not None
    assert view.spec.provider.api_key is not None
    assert view.spec.provider.api_key.secret_key_ref is not None
    assert view.spec.provider.api_key.secret_key_ref.name == "together"

    view = llm.replace("gitops", provider="openai", default_model="gpt-4o-mini", api_key=CANARY)
    assert (view.provider, view.base_url, view.active) == (
        "openai",
        "https://api.openai.com/v1",
        True,
    )
    assert view.spec.routing.auto is False
    assert view.spec.router.replicas == 1
    llm.delete("gitops")


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        (
            {"provider": "custom", "base_url": "https://169.254.169.254/v1"},
            "spec.provider.baseURL",
            "metadata",
        ),
        ({"provider": "custom"}, "spec.provider.baseURL", "required when spec.provider.type"),
        ({"provider": "bedrock"}, "spec.provider.type", "openai"),
        (
            {"provider": "openai", "base_url": "http://api.example.com/v1"},
            "spec.provider.baseURL",
            "https",
        ),
        (
            {"provider": "custom", "base_url": "https://api.together.xyz/v1 "},
            "spec.provider.baseURL",
            "whitespace",
        ),
        (
            {"provider": "custom", "base_url": "https://api.together.xyz/v1/chat/completions"},
            "spec.provider.baseURL",
            "drop the trailing",
        ),
        ({"provider": "openai", "default_model": "gpt 4o"}, "spec.provider.defaultModel", "id"),
    ],
)
def test_refusals_name_the_field_never_the_key(
    k8s_api: Any, namespace: str, crd: Any, kwargs: dict[str, Any], field: str, text: str
) -> None:
    llm = byollm.Client(namespace, api_client=k8s_api)
    with pytest.raises(byollm.ValidationError) as exc:
        llm.create("bad", api_key=CANARY, **{"default_model": "m", **kwargs})
    assert exc.value.field.startswith(field), exc.value.causes
    assert text in str(exc.value)
    assert CANARY not in str(exc.value)
    assert CANARY not in repr(exc.value.causes)
    # Nothing was written, not even the key Secret.
    assert _secret(k8s_api, namespace, byollm.key_secret_name("bad")) is None
    with pytest.raises(byollm.NotFoundError):
        llm.get("bad")


def test_sdk_argument_errors(k8s_api: Any, namespace: str, crd: Any) -> None:
    llm = byollm.Client(namespace, api_client=k8s_api)
    with pytest.raises(byollm.ValidationError) as exc:
        llm.create("nokey", provider="openai", default_model="gpt-4o-mini", api_key=" ")
    assert exc.value.field == "api_key"
    with pytest.raises(byollm.NotFoundError):
        llm.toggle("missing", False)
    with pytest.raises(byollm.NotFoundError):
        llm.update("missing", default_model="x")
    with pytest.raises(byollm.NotReadyError) as nr:
        llm.wait_ready("missing", timeout=0.5)
    assert nr.value.view is None


def test_client_reads_the_environment(
    control_plane: Any, namespace: str, crd: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``Client()`` as ``OpenAI()``: the kubeconfig from $KUBECONFIG, the namespace from its
    context."""
    import yaml

    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with byollm.Client() as llm:
        assert llm.namespace == namespace
        assert llm.list() == []


def test_a_base_url_that_404s_is_never_ready(
    k8s_api: Any, namespace: str, running_operator: Any, stub_provider: dict[str, Any]
) -> None:
    """A base URL one path off: the provider's models endpoint answers 404, so every call
    would too. CredentialsValid=False (EndpointNotFound) and Ready=False."""
    llm = byollm.Client(namespace, api_client=k8s_api)
    llm.create(
        "off",
        provider="custom",
        base_url=_stub_url(namespace, stub_provider, "/v1/chat"),
        api_key=stub_provider["key"],
        default_model="m",
    )
    view = llm.update("off", wait=True, timeout=90)  # nothing changed: wait until settled
    creds = view.condition("CredentialsValid")
    assert creds is not None
    assert (creds.status, creds.reason) == ("False", "EndpointNotFound")
    assert not view.ready
    ready = view.condition("Ready")
    assert ready is not None
    assert "EndpointNotFound" in ready.message


async def test_async_client(
    k8s_api: Any, namespace: str, running_operator: Any, stub_provider: dict[str, Any]
) -> None:
    llm = byollm.AsyncClient(namespace, api_client=k8s_api)
    base_url = _stub_url(namespace, stub_provider)
    view = await llm.create(
        "a",
        provider="custom",
        base_url=base_url,
        api_key=stub_provider["key"],
        default_model="m",
        wait=True,
        timeout=90,
    )
    assert view.api_key_prefix == stub_provider["key"][:8]
    assert [v.name for v in await llm.list()] == ["a"]
    view = await llm.toggle("a", False)
    assert view.serving_mode == "Managed"
    assert view.api_key_prefix == stub_provider["key"][:8]
    with pytest.raises(byollm.ValidationError):
        await llm.update("a", base_url="https://10.0.0.1/v1")
    await llm.delete("a")
    with pytest.raises(byollm.NotFoundError):
        await llm.get("a")
