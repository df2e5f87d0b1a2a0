"""The contract between operator and router: written once, read back exactly, and each of
its constants defined in one place only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from byollm.api import LLMConfigSpec
from byollm_operator import builders
from byollm_operator.settings import Settings
from byollm_router import contract
from byollm_router.config import load_config
from byollm_router.contract import Mode, ProviderType, RouterEnv

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p for top in ("router", "operator", "sdk", "devtools") for p in (ROOT / top).rglob("*.py")
]
OWNER = builders.Owner(name="acme", namespace="tenant-acme", uid="u-1")
KEY = "sk-test-CANARY-0123456789"
SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    managed_url="http://litellm.platform.svc:4000/v1",
    upstream_allowlist="ollama.models.svc.cluster.local",
)
KEY_REF = {"secretKeyRef": {"name": "k", "key": "apiKey"}}

SPECS: dict[str, dict[str, Any]] = {
    "openrouter-auto": {
        "mode": "BYO",
        "provider": {"type": "openrouter", "defaultModel": "qwen/qwen3", "apiKey": KEY_REF},
        "routing": {"auto": True, "models": {"fast": "openai/gpt-oss-20b", "code": "x/coder"}},
    },
    "azure": {
        "mode": "BYO",
        "provider": {
            "type": "azure",
            "baseURL": "https://acme.openai.azure.com/openai",
            "defaultModel": "gpt-4o",
            "apiKey": KEY_REF,
        },
    },
    "anthropic": {
        "mode": "BYO",
        "provider": {"type": "anthropic", "defaultModel": "claude-x", "apiKey": KEY_REF},
    },
    "managed": {"mode": "Managed"},
    "toggled-off": {
        "mode": "BYO",
        "active": False,
        "provider": {"type": "groq", "defaultModel": "llama", "apiKey": KEY_REF},
    },
}


@pytest.mark.parametrize("case", list(SPECS))
def test_round_trip_builders_env_router_config(case: str) -> None:
    """What the operator writes is what the router reads, field by field."""
    spec = LLMConfigSpec.model_validate(SPECS[case])
    env = builders.router_env(spec, KEY, SETTINGS)
    assert RouterEnv.from_env(env).to_env() == env
    config = load_config({**env, contract.BYOLLM_ROUTER_TOKEN: "tok"})
    assert config.mode is spec.serving_mode()
    table = spec.routing.models.by_category()
    assert dict(config.routing.models) == table
    assert config.routing.auto is spec.routing.auto
    if config.mode is Mode.BYO:
        assert spec.provider is not None
        assert config.provider is spec.provider.type
        assert config.base_url == spec.provider.effective_base_url().rstrip("/")
        assert config.model == spec.provider.default_model
        assert config.upstream_key is not None
        assert config.upstream_key.get_secret_value() == KEY
        assert config.allowlist == SETTINGS.upstream_allowlist
        if config.provider is ProviderType.AZURE:
            assert config.azure_api_version == contract.DEFAULT_AZURE_API_VERSION
    else:
        assert not set(contract.BYO_SECRET_KEYS) & set(env)  # wiped, not emptied
        assert config.base_url == SETTINGS.managed_url.rstrip("/")
        assert config.upstream_key is None  # the tenant's key is never sent to LiteLLM


def test_router_env_repr_hides_the_key() -> None:
    env = RouterEnv.from_env(
        builders.router_env(LLMConfigSpec.model_validate(SPECS["anthropic"]), KEY, SETTINGS)
    )
    assert KEY not in repr(env)
    assert KEY not in str(env)


# Each literal below is a contract constant: it may be written in exactly one source file.
ONCE = {
    contract.DEFAULT_AZURE_API_VERSION: "router/byollm_router/contract.py",
    contract.ANTHROPIC_VERSION: "router/byollm_router/contract.py",
    contract.AZURE_API_VERSION_PATTERN: "router/byollm_router/contract.py",
    "169.254.169.254": "router/byollm_router/forbidden.py",
    "100.64.0.0/10": "router/byollm_router/forbidden.py",
    "fc00::/7": "router/byollm_router/forbidden.py",
    "kubernetes.default.svc.cluster.local": "router/byollm_router/forbidden.py",
    '".svc.cluster.local"': "router/byollm_router/forbidden.py",
    '"byollm.io"': "sdk/byollm/api.py",
    '"v1alpha1"': "sdk/byollm/api.py",
}


@pytest.mark.parametrize("literal", list(ONCE))
def test_contract_constant_written_once(literal: str) -> None:
    holders = sorted(
        str(p.relative_to(ROOT)) for p in SOURCES if re.search(re.escape(literal), p.read_text())
    )
    assert holders == [ONCE[literal]], f"{literal!r} is written in {holders}"
