"""Router config from the environment contract, and upstream-failure mapping."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from pydantic import ValidationError

from byollm_router import contract as c
from byollm_router.app import map_upstream_error
from byollm_router.config import ConfigError, load_config, parse_routing
from byollm_router.contract import Category, Mode, ProviderType, RoutingTable
from byollm_router.guard import GuardError

KEY = "sk-unit-secret-key-123456"
BYO = {
    c.BYOLLM_ROUTER_TOKEN: "tok",
    c.LLM_PROVIDER: "openrouter",
    c.LLM_BASE_URL: "https://openrouter.ai/api/v1/",
    c.LLM_API_KEY: KEY,
    c.LLM_MODEL: "qwen/qwen3-30b-a3b-instruct",
}


def _refused(env: dict[str, str], variable: str) -> ConfigError:
    """``load_config(env)`` raises a ConfigError naming ``variable``; that error."""
    with pytest.raises(ConfigError) as err:
        load_config(env)
    assert err.value.variable == variable
    return err.value


def test_byo_inferred_from_the_four_keys() -> None:
    cfg = load_config(BYO)
    assert cfg.mode is Mode.BYO
    assert cfg.provider is ProviderType.OPENROUTER
    assert cfg.base_url == "https://openrouter.ai/api/v1"
    assert cfg.upstream_key is not None
    assert cfg.upstream_key.get_secret_value() == KEY
    assert KEY not in repr(cfg)
    assert KEY not in str(cfg)
    assert "tok" not in repr(cfg.router_token)


def test_managed_inferred_and_byo_key_ignored() -> None:
    cfg = load_config(
        {
            c.BYOLLM_ROUTER_TOKEN: "tok",
            c.BYOLLM_MANAGED_URL: "http://litellm.platform.svc:4000/v1",
            c.LLM_API_KEY: KEY,  # a stale key must never be used in Managed mode
        }
    )
    assert cfg.mode is Mode.MANAGED
    assert cfg.provider is None
    assert cfg.upstream_key is None
    assert cfg.base_url == "http://litellm.platform.svc:4000/v1"
    assert cfg.model is None


def test_managed_default_model_is_the_platforms() -> None:
    env = {
        c.BYOLLM_ROUTER_TOKEN: "tok",
        c.LLM_MODE: "Managed",
        c.BYOLLM_MANAGED_URL: "http://litellm.platform.svc:4000/v1",
        c.BYOLLM_MANAGED_MODEL: "gpt-4o-mini",
        c.LLM_MODEL: "tenant-model",  # a stale BYO key: never the default in Managed
    }
    assert load_config(env).model == "gpt-4o-mini"


def test_explicit_mode_is_case_insensitive_and_base_url_defaults() -> None:
    env = {**BYO, c.LLM_MODE: "byo", c.LLM_PROVIDER: "groq"}
    del env[c.LLM_BASE_URL]
    cfg = load_config(env)
    assert cfg.base_url == c.DEFAULT_BASE_URLS[ProviderType.GROQ]


def test_routing_and_tunables() -> None:
    cfg = load_config(
        {
            **BYO,
            c.LLM_ROUTING: '{"auto": true, "models": {"fast": "f", "longContext": "l"}}',
            c.BYOLLM_UPSTREAM_TIMEOUT: "30",
            c.BYOLLM_UPSTREAM_CONNECT_TIMEOUT: "2.5",
            c.BYOLLM_MAX_REQUEST_BYTES: "1024",
            c.BYOLLM_AUTOROUTE_TIMEOUT: "1",
            c.BYOLLM_TENANT: "acme",
        }
    )
    assert cfg.routing.auto
    assert cfg.routing.models == {Category.FAST: "f", Category.LONG_CONTEXT: "l"}
    assert (cfg.upstream_timeout_s, cfg.connect_timeout_s) == (30.0, 2.5)
    assert cfg.max_request_bytes == 1024
    assert cfg.autoroute_timeout_s == 1.0
    assert cfg.tenant == "acme"


def test_constrained_classifier_output_is_opt_in_and_checked() -> None:
    assert load_config(BYO).autoroute_constrained is None
    for form in ("json_schema", "json_object"):
        assert load_config({**BYO, c.BYOLLM_AUTOROUTE_CONSTRAINED: form}).autoroute_constrained == (
            form
        )
    _refused({**BYO, c.BYOLLM_AUTOROUTE_CONSTRAINED: "true"}, c.BYOLLM_AUTOROUTE_CONSTRAINED)


AZURE = {
    **BYO,
    c.LLM_PROVIDER: "azure",
    c.LLM_BASE_URL: "https://r.openai.azure.com",
    c.LLM_MODEL: "gpt-4.1-mini",
}


def test_azure_version() -> None:
    env = AZURE
    assert load_config(env).azure_api_version == "2024-10-21"
    _refused({**env, c.LLM_AZURE_API_VERSION: "latest"}, c.LLM_AZURE_API_VERSION)


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({c.LLM_BASE_URL: "https://user:pw@host/v1"}, c.LLM_BASE_URL),
        ({c.LLM_BASE_URL: "https://host/v1?key=x"}, c.LLM_BASE_URL),
        ({c.LLM_BASE_URL: "http://10.0.0.5/v1"}, c.LLM_BASE_URL),  # private, not allowlisted
        ({c.LLM_API_KEY: "sk-a\nInjected: 1"}, c.LLM_API_KEY),
        ({c.BYOLLM_UPSTREAM_CONNECT_TIMEOUT: "nan"}, c.BYOLLM_UPSTREAM_CONNECT_TIMEOUT),
        ({c.LLM_ROUTING: '{"auto": true, "extra": 1}'}, c.LLM_ROUTING),
        ({c.LLM_ROUTING: "[]"}, c.LLM_ROUTING),
    ],
)
def test_errors_name_the_variable_not_the_value(changes: dict[str, str], variable: str) -> None:
    err = _refused({**BYO, **changes}, variable)
    assert str(err).startswith(variable)
    assert KEY not in str(err)
    assert "\n" not in str(err)


def test_private_base_url_admitted_by_allowlist() -> None:
    cfg = load_config(
        {**BYO, c.LLM_BASE_URL: "http://10.0.0.5/v1", c.BYOLLM_UPSTREAM_ALLOWLIST: "10.0.0.0/8"}
    )
    assert cfg.allowlist == "10.0.0.0/8"


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (httpx.ConnectError("refused"), 503, "upstream_unreachable"),
        (httpx.ConnectTimeout("slow"), 503, "upstream_unreachable"),
        (httpx.PoolTimeout("busy"), 503, "router_overloaded"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.WriteTimeout("slow"), 504, "upstream_timeout"),
        (httpx.RemoteProtocolError("reset"), 502, "upstream_disconnected"),
        (httpx.ReadError("reset"), 502, "upstream_disconnected"),
        (GuardError("10.0.0.1", "private"), 502, "upstream_blocked"),
    ],
)
def test_upstream_failure_mapping(exc: Exception, status: int, code: str) -> None:
    err = map_upstream_error(exc)
    assert (err.status, err.code) == (status, code)


def test_guard_refusal_wrapped_by_httpx_is_still_blocked() -> None:
    outer = httpx.ConnectError("refused")
    outer.__cause__ = GuardError("169.254.169.254", "metadata")
    assert map_upstream_error(outer).code == "upstream_blocked"


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({c.LLM_MODEL: ".."}, c.LLM_MODEL),
        ({c.LLM_MODEL: "qwen/qwen3"}, c.LLM_MODEL),
        ({c.LLM_ROUTING: '{"models": {"fast": "../x"}}'}, c.LLM_ROUTING),
    ],
)
def test_azure_models_must_be_deployment_names(changes: dict[str, str], variable: str) -> None:
    _refused({**AZURE, **changes}, variable)


def test_bounds_default_and_configured() -> None:
    cfg = load_config(BYO)
    assert cfg.max_buffered_response_bytes == c.DEFAULT_MAX_BUFFERED_RESPONSE_BYTES == 8 << 20
    assert cfg.client_header_timeout_s == c.DEFAULT_CLIENT_HEADER_TIMEOUT_S
    assert cfg.client_body_timeout_s == c.DEFAULT_CLIENT_BODY_TIMEOUT_S
    assert cfg.client_write_timeout_s == c.DEFAULT_CLIENT_WRITE_TIMEOUT_S
    assert cfg.max_connections == c.DEFAULT_MAX_CONNECTIONS
    cfg = load_config(
        {
            **BYO,
            c.BYOLLM_MAX_BUFFERED_RESPONSE_BYTES: "65536",
            c.BYOLLM_CLIENT_HEADER_TIMEOUT: "2.5",
            c.BYOLLM_CLIENT_BODY_TIMEOUT: "30",
            c.BYOLLM_CLIENT_WRITE_TIMEOUT: "15",
            c.BYOLLM_MAX_CONNECTIONS: "50",
        }
    )
    assert cfg.client_write_timeout_s == 15.0
    assert cfg.max_buffered_response_bytes == 65536
    assert (cfg.client_header_timeout_s, cfg.client_body_timeout_s) == (2.5, 30.0)
    assert cfg.max_connections == 50
    for name in (
        c.BYOLLM_MAX_BUFFERED_RESPONSE_BYTES,
        c.BYOLLM_CLIENT_HEADER_TIMEOUT,
        c.BYOLLM_CLIENT_BODY_TIMEOUT,
        c.BYOLLM_CLIENT_WRITE_TIMEOUT,
        c.BYOLLM_MAX_CONNECTIONS,
    ):
        _refused({**BYO, name: "0"}, name)


def _custom(base_url: str) -> dict[str, str]:
    """The smallest BYO environment: a custom provider at ``base_url``."""
    return {
        c.BYOLLM_ROUTER_TOKEN: "t",
        c.LLM_PROVIDER: "custom",
        c.LLM_BASE_URL: base_url,
        c.LLM_API_KEY: "k",
        c.LLM_MODEL: "m",
    }


def test_api_server_service_address_refused_even_when_allowlisted() -> None:
    """The kubelet's KUBERNETES_SERVICE_HOST is never an upstream, allowlist or not."""
    env = {
        **_custom("https://10.96.0.1/v1"),
        c.BYOLLM_UPSTREAM_ALLOWLIST: "10.0.0.0/8",
        c.KUBERNETES_SERVICE_HOST: "10.96.0.1",
    }
    with pytest.raises(ConfigError, match="cluster-internal"):
        load_config(env)
    assert load_config({**env, c.LLM_BASE_URL: "https://10.96.0.7/v1"}).api_server_host == (
        "10.96.0.1"
    )


def test_host_with_empty_label_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match="empty label"):
        load_config(_custom("https://localhost../v1"))


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"auto": True},
        {"auto": False, "models": {"fast": "f", "longContext": "l", "code": "c"}},
        {"models": {}},
        {"auto": "yes"},
        {"auto": "Off"},
        {"auto": 1},
        {"auto": 0.0},
        {"auto": 2},
        {"auto": "maybe"},
        {"auto": None},
        {"models": {"fast": 1}},
        {"models": {"quick": "q"}},
        {"models": []},
        {"models": None},
        {"extra": 1},
        [],
        "auto",
        None,
    ],
)
def test_router_reads_routing_tables_as_the_contract_does(table: object) -> None:
    """The router parses LLM_ROUTING by hand (no pydantic in its process): whatever the
    contract's model accepts it accepts with the same content, whatever it refuses it
    refuses."""
    try:
        model = RoutingTable.model_validate_json(json.dumps(table))
    except ValidationError:
        with pytest.raises(ValueError, match=r"."):
            parse_routing(table)
        return
    parsed = parse_routing(table)
    assert (parsed.auto, dict(parsed.models)) == (model.auto, model.models)


def test_router_process_loads_neither_pydantic_nor_uvicorn() -> None:
    """pydantic costs the router ~11 MB of RSS and ~0.1 s of start-up, once per tenant;
    the router serves with its own server (uvicorn is only the benchmarks' Python floor)."""
    code = (
        "import sys\n"
        "from byollm_router.main import _parse_args\n"
        "from byollm_router import server\n"
        "from byollm_router.app import create_app\n"
        "from byollm_router.config import load_config\n"
        f"create_app(load_config({BYO!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'uvicorn')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
