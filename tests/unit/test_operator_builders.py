"""Pure builders: expected YAML (tests/unit/data/operator/) and properties.

Regenerate the expected files after an intended change with
``BYOLLM_UPDATE_GOLDEN=1 pytest tests/unit/test_operator_builders.py`` and review the diff.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.api import LLMConfigSpec
from byollm_operator import builders
from byollm_operator.settings import Settings
from byollm_router import contract

DATA = Path(__file__).parent / "data" / "operator"
OWNER = builders.Owner(
    name="acme", namespace="tenant-acme", uid="11111111-2222-3333-4444-555555555555"
)
KEY = "sk-or-v1-0123456789abcdefSECRETSECRET"
SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    managed_url="http://litellm.platform.svc:4000/v1",
    router_image="byollm/router:test",
)

BYO: dict[str, Any] = {
    "mode": "BYO",
    "provider": {
        "type": "openrouter",
        "defaultModel": "qwen/qwen3-30b-a3b-instruct",
        "apiKey": {"secretKeyRef": {"name": "acme-openrouter", "key": "apiKey"}},
    },
    "routing": {"auto": True, "models": {"fast": "openai/gpt-oss-20b"}},
    "access": {"podSelector": {"matchLabels": {"app": "agent"}}},
}
MANAGED: dict[str, Any] = {**BYO, "mode": "Managed"}
AZURE: dict[str, Any] = {
    "mode": "BYO",
    "provider": {
        "type": "azure",
        "baseURL": "https://acme.openai.azure.com/openai",
        "defaultModel": "gpt-4o",
        "apiKey": {"sealed": "v1.0123456789abcdef.QUJDREVGR0hJSktMTU5PUA=="},
        "azure": {"apiVersion": "2024-10-21"},
    },
}


def _build(spec: dict[str, Any], key: str | None = KEY) -> builders.Children:
    return builders.build(OWNER, LLMConfigSpec.model_validate(spec), key, SETTINGS)


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@pytest.mark.parametrize("case", ["byo", "managed", "azure"])
def test_children_match_expected_yaml(case: str) -> None:
    spec = {"byo": BYO, "managed": MANAGED, "azure": AZURE}[case]
    children = _build(spec)
    rendered = yaml.safe_dump_all(
        [*children.in_apply_order(), builders.token_secret(OWNER, "TOKEN")], sort_keys=True
    )
    path = DATA / f"{case}.yaml"
    if os.environ.get("BYOLLM_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered)
    assert rendered == path.read_text()


def test_byo_secret_is_exactly_the_contract() -> None:
    env = _decoded(_build(BYO).llm_secret)
    assert set(env) == {contract.LLM_MODE, *contract.BYO_SECRET_KEYS, contract.LLM_ROUTING}
    assert env[contract.LLM_MODE] == "BYO"
    assert env[contract.LLM_API_KEY] == KEY
    assert env[contract.LLM_BASE_URL] == "https://openrouter.ai/api/v1"
    assert json.loads(env[contract.LLM_ROUTING]) == {
        "auto": True,
        "models": {"fast": "openai/gpt-oss-20b"},
    }


@pytest.mark.parametrize("spec", [MANAGED, {**BYO, "active": False}], ids=["managed", "inactive"])
def test_managed_secret_has_no_byo_keys(spec: dict[str, Any]) -> None:
    env = _decoded(_build(spec).llm_secret)
    assert not set(contract.BYO_SECRET_KEYS) & set(env)
    assert env[contract.LLM_MODE] == "Managed"
    assert env[contract.BYOLLM_MANAGED_URL] == "http://litellm.platform.svc:4000/v1"


def test_azure_api_version() -> None:
    assert _decoded(_build(AZURE).llm_secret)[contract.LLM_AZURE_API_VERSION] == "2024-10-21"


def _pod(children: builders.Children) -> dict[str, Any]:
    pod: dict[str, Any] = children.deployment["spec"]["template"]
    return pod


def test_pod_env_byo_has_no_shared_platform_settings() -> None:
    for spec in (BYO, AZURE):
        text = json.dumps(_pod(_build(spec)))
        for word in ("LITELLM", "LANGFUSE", "litellm", "langfuse", "MANAGED_URL"):
            assert word not in text


def test_pod_env_managed_only_shared_url() -> None:
    children = _build(MANAGED)
    text = json.dumps(_pod(children)).lower()
    assert "langfuse" not in text
    env = _decoded(children.llm_secret)
    assert {k for k in env if "LITELLM" in k or "MANAGED" in k} == {contract.BYOLLM_MANAGED_URL}


def test_restricted_pod() -> None:
    pod = _pod(_build(BYO))["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["command"] == ["byollm-router", "--host", "0.0.0.0", "--port", "8080"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    strategy = _build(BYO).deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def _hash(spec: dict[str, Any], key: str = KEY) -> str:
    return _build(spec, key).config_hash


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(BYO))
    node = spec
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return spec


@pytest.mark.parametrize(
    ("what", "spec", "key"),
    [
        ("provider", _with("provider.type", "openai"), KEY),
        ("baseURL", _with("provider.baseURL", "https://eu.openrouter.ai/api/v1"), KEY),
        ("key", BYO, KEY + "x"),
        ("model", _with("provider.defaultModel", "openai/gpt-4o"), KEY),
        ("routing", _with("routing.models", {"code": "qwen/qwen3-coder-30b"}), KEY),
        ("mode", MANAGED, KEY),
        ("active", _with("active", False), KEY),
    ],
)
def test_hash_rolls_on_router_inputs(what: str, spec: dict[str, Any], key: str) -> None:
    assert _hash(spec, key) != _hash(BYO), what


@pytest.mark.parametrize(
    "spec",
    [
        _with("router.replicas", 5),
        _with("router.resources", {"requests": {"cpu": "1"}}),
        _with("access.podSelector", {"matchLabels": {"app": "other"}}),
    ],
    ids=["replicas", "resources", "access"],
)
def test_hash_ignores_sizing_and_access(spec: dict[str, Any]) -> None:
    assert _hash(spec) == _hash(BYO)


def test_netpol_byo_and_managed() -> None:
    byo = _build(BYO).network_policy["spec"]
    assert byo["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "agent"}}}]
    blocks = [p["ipBlock"] for r in byo["egress"] for p in r.get("to", []) if "ipBlock" in p]
    v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    v6 = next(b for b in blocks if b["cidr"] == "::/0")

    def excepted(ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        cidrs = v4["except"] if addr.version == 4 else v6["except"]
        return any(addr in ipaddress.ip_network(c) for c in cidrs)

    for ip in (
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "168.63.129.16",  # Azure WireServer
        "192.0.0.192",  # Oracle Cloud metadata
        "fd00:ec2::254",
        "fe80::1",
        "64:ff9b::a00:5",  # NAT64 image of 10.0.0.5
        "64:ff9b::a9fe:a9fe",  # NAT64 image of 169.254.169.254
    ):
        assert excepted(ip), ip
    for ip in ("8.8.8.8", "2606:4700::1", "64:ff9b::808:808"):  # public, and DNS64 to public
        assert not excepted(ip), ip
    internet = next(r for r in byo["egress"] if any("ipBlock" in p for p in r["to"]))
    assert internet["ports"] == [{"protocol": "TCP", "port": 443}]
    dns = byo["egress"][0]["to"]
    assert dns == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    extra = Settings(egress_extra_except_cidrs=["203.0.113.7/32", "2001:db8::7/128"])
    spec = LLMConfigSpec.model_validate(BYO)
    netpol = builders.build(OWNER, spec, KEY, extra).network_policy["spec"]
    ranges = [
        c for r in netpol["egress"] for p in r["to"] for c in p.get("ipBlock", {}).get("except", [])
    ]
    assert {"203.0.113.7/32", "2001:db8::7/128"} <= set(ranges)
    managed = _build(MANAGED).network_policy["spec"]
    peers = [p for r in managed["egress"] for p in r["to"]]
    assert not any("ipBlock" in p for p in peers)
    assert {"namespaceSelector", "podSelector"} <= set(peers[-1])


def test_children_owned_and_labelled() -> None:
    for obj in _build(BYO).in_apply_order():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == OWNER.uid
        assert ref["controller"] is True
        assert obj["metadata"]["labels"][builders.LABEL_MANAGED_BY] == "byollm-operator"


def test_prefix_is_eight_chars() -> None:
    assert builders.api_key_prefix(KEY) == "sk-or-v1"
    assert builders.api_key_prefix(None) is None


@settings(max_examples=200, deadline=None)
@given(body=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=20))
def test_key_never_in_deployment_service_netpol(body: str) -> None:
    key = "sk-" + body
    children = _build(BYO, key)
    b64 = base64.b64encode(key.encode()).decode()
    for obj in (children.deployment, children.service, children.network_policy):
        text = json.dumps(obj)
        assert key not in text
        assert b64 not in text
    assert key not in children.config_hash


def test_hash_rolls_on_router_token() -> None:
    spec = LLMConfigSpec.model_validate(BYO)
    a = builders.build(OWNER, spec, KEY, SETTINGS, token="tok-a").config_hash
    b = builders.build(OWNER, spec, KEY, SETTINGS, token="tok-b").config_hash
    assert a != b
    assert "tok-a" not in json.dumps(builders.build(OWNER, spec, KEY, SETTINGS, "tok-a").deployment)


@pytest.mark.parametrize("spec", [MANAGED, {**BYO, "active": False}], ids=["managed", "inactive"])
def test_managed_gets_the_platforms_model_and_table(spec: dict[str, Any]) -> None:
    settings = SETTINGS.model_copy(
        update={"managed_model": "gpt-4o-mini", "managed_routing": {"code": "gpt-4.1"}}
    )
    env = builders.router_env(LLMConfigSpec.model_validate(spec), None, settings)
    assert env[contract.BYOLLM_MANAGED_MODEL] == "gpt-4o-mini"
    # The tenant's provider models never reach the shared LiteLLM; its auto switch does.
    assert json.loads(env[contract.LLM_ROUTING]) == {"auto": True, "models": {"code": "gpt-4.1"}}
    byo = builders.router_env(LLMConfigSpec.model_validate(BYO), KEY, settings)
    assert contract.BYOLLM_MANAGED_MODEL not in byo
