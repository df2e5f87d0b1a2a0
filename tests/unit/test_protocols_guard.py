"""Every Responses and Messages API call goes through the SSRF guard, as chat completions
do: the provider's hostname resolves to an inside address and the request is refused
before any socket opens, answered with the route's 502. No packet leaves the process."""

from __future__ import annotations

import httpx
import pytest
from stubs.loopback import SafetyNet

from byollm_router import contract as c
from byollm_router.app import RouterApp, make_upstream
from byollm_router.config import load_config
from byollm_router.errors import RouterError
from byollm_router.protocols import calls
from byollm_router.providers.azure import Azure
from byollm_router.providers.openai_compat import OpenAICompatible

TOKEN = "tok-guard-protocols-0123456789"
KEY = "sk-guard-protocols-key"
PROVIDERS = {
    "custom": "https://api.tenant-provider.example/v1",
    "azure": "https://tenant.openai.azure.example",
    "anthropic": "https://api.tenant-provider.example/v1",
}
CALLS = [
    ("POST", "/v1/responses", {"model": "mm", "input": "hi"}),
    ("POST", "/v1/responses", {"model": "mm", "input": "hi", "stream": True}),
    ("GET", "/v1/responses/resp_1", None),
    ("DELETE", "/v1/responses/resp_1", None),
    ("GET", "/v1/responses/resp_1/input_items", None),
    (
        "POST",
        "/v1/messages",
        {"model": "mm", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "POST",
        "/v1/messages/count_tokens",
        {"model": "mm", "messages": [{"role": "user", "content": "hi"}]},
    ),
]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_new_routes_are_guarded(provider: str) -> None:
    resolved: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["10.0.0.7"]

    env = {
        c.BYOLLM_ROUTER_TOKEN: TOKEN,
        c.LLM_PROVIDER: provider,
        c.LLM_BASE_URL: PROVIDERS[provider],
        c.LLM_API_KEY: KEY,
        c.LLM_MODEL: "mm",
    }
    if provider == "azure":
        env[c.LLM_AZURE_API_VERSION] = "2024-10-21"
    net = SafetyNet(allowed=())
    cfg = load_config(env)
    app = RouterApp(cfg, client=make_upstream(cfg, resolver=resolver, before_connect=net))
    await app.startup()
    answered = 0
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router"
        ) as client:
            for method, path, body in CALLS:
                headers = (
                    {"x-api-key": TOKEN}
                    if "messages" in path
                    else {"authorization": f"Bearer {TOKEN}"}
                )
                r = await client.request(method, path, json=body, headers=headers)
                if r.status_code == 400:  # refused locally (e.g. no stored responses)
                    continue
                answered += 1
                assert r.status_code == 502, (method, path, r.text)
                if "messages" in path:
                    assert r.json()["error"]["type"] == "api_error"
                    assert "refused to connect" in r.json()["error"]["message"]
                else:
                    assert r.json()["error"]["code"] == "upstream_blocked"
                assert KEY not in r.text
    finally:
        await app.shutdown()
    assert answered >= 3
    assert len(resolved) == answered  # each upstream call was resolved by the guard ...
    assert net.connects == []  # ... and refused before any connection


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/v1/responses/..", "GET", 404),
        ("/v1/responses/.", "DELETE", 404),
        ("/v1/responses/a/../../x", "GET", 404),
        ("/v1/responses/resp_1/other", "GET", 404),
        ("/v1/responses/resp_1/input_items", "DELETE", 405),
    ],
)
def test_response_item_paths_stay_one_segment(path: str, method: str, status: int) -> None:
    provider = OpenAICompatible("openai", "https://api.example/v1", "sk-x")
    with pytest.raises(RouterError) as err:
        calls.response_item(provider, method, path, b"", {})
    assert err.value.status == status


def test_response_item_urls_and_query() -> None:
    provider = OpenAICompatible("openai", "https://api.example/v1", "sk-x")
    call = calls.response_item(
        provider, "GET", "/v1/responses/resp_1/input_items", b"limit=5&order=asc&evil=1", {}
    )
    assert str(call.url) == "https://api.example/v1/responses/resp_1/input_items?limit=5&order=asc"
    old = Azure("https://r.example", "k", "2024-10-21", ["dep"])
    assert str(old.responses_url("/resp_1")) == (
        "https://r.example/openai/responses/resp_1?api-version=2025-04-01-preview"
    )
    new = Azure("https://r.example/openai", "k", "2025-05-01-preview", ["dep"])
    assert str(new.responses_url()) == (
        "https://r.example/openai/responses?api-version=2025-05-01-preview"
    )
