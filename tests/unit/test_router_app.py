"""The router app in-process (ASGI, no sockets to a provider): guard refusals and routing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from stubs.loopback import SafetyNet, Upstream, answer, serve

from byollm_router import contract as c
from byollm_router.app import RouterApp, make_upstream
from byollm_router.config import load_config

ENV = {
    c.BYOLLM_ROUTER_TOKEN: "tok",
    c.LLM_PROVIDER: "openai",
    c.LLM_BASE_URL: "https://api.provider.test/v1",
    c.LLM_API_KEY: "sk-k",
    c.LLM_MODEL: "m",
}


async def rebinds_to_private(host: str, port: int) -> Sequence[str]:
    """DNS that answers a private address for a public-looking name (rebinding)."""
    return ["10.1.2.3"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    cfg = load_config(ENV)
    net = SafetyNet(allowed=())
    app = RouterApp(cfg, client=make_upstream(cfg, resolver=rebinds_to_private, before_connect=net))
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://router",
        headers={"authorization": "Bearer tok"},
    ) as c:
        yield c
    await app.shutdown()


async def test_guard_refusal_is_502_upstream_blocked(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_blocked"
    assert "10.1.2.3" not in error["message"]
    metrics = (await client.get("/metrics")).text
    assert 'code="upstream_blocked"' in metrics


async def test_probes_need_no_token(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        response = await client.get(path, headers={"authorization": ""})
        assert response.status_code == 200
    assert (await client.get("/v1/models", headers={"authorization": ""})).status_code == 401


def test_managed_litellm_host_is_admitted_but_nothing_else() -> None:
    """The shared LiteLLM URL comes from the operator (in-cluster by design); the tenant's
    allowlist is not widened beyond it."""
    cfg = load_config(
        {
            c.BYOLLM_ROUTER_TOKEN: "tok",
            c.LLM_MODE: "Managed",
            c.BYOLLM_MANAGED_URL: "http://litellm.platform.svc.cluster.local:4000/v1",
        }
    )
    upstream = make_upstream(cfg)
    assert upstream.allowlist.admits("litellm.platform.svc.cluster.local")
    assert not upstream.allowlist.admits("10.0.0.7")
    assert not upstream.allowlist.admits("langfuse.platform.svc.cluster.local")


async def test_forwarded_headers_trimmed_and_unsafe_values_dropped() -> None:
    async with serve(Upstream(reply=lambda _s: answer(200, b'{"ok": true}'))) as up:
        env = {**ENV, c.LLM_BASE_URL: up.url + "/v1", c.BYOLLM_UPSTREAM_ALLOWLIST: "127.0.0.1"}
        cfg = load_config(env)
        app = RouterApp(cfg, client=make_upstream(cfg, before_connect=SafetyNet()))
        await app.startup()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router"
        ) as client:
            response = await client.post(
                "/v1/chat/completions",
                json={"messages": []},
                headers=[
                    (b"authorization", b"Bearer tok"),
                    (b"x-title", b"my agent"),
                    (b"http-referer", b"caf\xc3\xa9"),
                    (b"x-secret", b"not forwarded"),
                ],
            )
        await app.shutdown()
    assert response.status_code == 200
    sent = up.seen[0].headers
    assert sent["x-title"] == "my agent"
    assert "http-referer" not in sent
    assert "x-secret" not in sent
    assert sent["authorization"] == "Bearer sk-k"  # the provider key, never the router token
