"""The router really uses the guard: its upstream client, redirects, and a refusal at
connect time turned into an OpenAI-shaped 502. No packet leaves 127.0.0.1."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from stubs.loopback import SafetyNet, Upstream, answer, serve

from byollm_router import contract as c
from byollm_router.app import RouterApp, make_upstream
from byollm_router.config import load_config

TOKEN = "tok-guard-router-0123456789"
BYO = {
    c.BYOLLM_ROUTER_TOKEN: TOKEN,
    c.LLM_PROVIDER: "custom",
    c.LLM_BASE_URL: "https://api.tenant-provider.example/v1",
    c.LLM_API_KEY: "sk-guard-router-key",
    c.LLM_MODEL: "m",
}


async def chat(app: RouterApp, body: dict[str, object]) -> httpx.Response:
    """One chat completion through ``app`` in-process (started and shut down around it)."""
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router"
        ) as client:
            return await client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {TOKEN}"}
            )
    finally:
        await app.shutdown()


def test_router_client_is_guarded() -> None:
    t = make_upstream(load_config({**BYO, c.BYOLLM_UPSTREAM_ALLOWLIST: "10.96.0.0/12"}))
    assert t.allowlist.admits_ip(ipaddress.ip_address("10.96.0.1"))
    assert not t.allowlist.admits("127.0.0.1")


def test_managed_transport_admits_only_the_shared_litellm_host() -> None:
    cfg = load_config(
        {c.BYOLLM_ROUTER_TOKEN: TOKEN, c.BYOLLM_MANAGED_URL: "http://litellm.platform.svc:4000/v1"}
    )
    t = make_upstream(cfg)
    assert t.allowlist.admits("litellm.platform.svc")
    assert not t.allowlist.admits("langfuse.platform.svc")
    assert not t.allowlist.admits("169.254.169.254")


async def test_router_never_follows_redirects() -> None:
    """A provider redirect (here to the metadata service) is handed back verbatim; the
    router makes exactly one upstream request."""
    location = ("location", "http://169.254.169.254/latest/meta-data/")
    async with serve(Upstream(reply=lambda _s: answer(302, b"{}", location))) as up:
        env = {**BYO, c.LLM_BASE_URL: up.url + "/v1", c.BYOLLM_UPSTREAM_ALLOWLIST: "127.0.0.1"}
        cfg = load_config(env)
        app = RouterApp(cfg, client=make_upstream(cfg, before_connect=SafetyNet()))
        r = await chat(app, {"model": "m", "messages": []})
    assert r.status_code == 302
    assert [s.line for s in up.seen] == ["POST /v1/chat/completions HTTP/1.1"]


@pytest.mark.parametrize(
    "answers",
    [["127.0.0.1"], ["10.0.0.7"], ["169.254.169.254"], ["8.8.8.8", "fd00:ec2::254"]],
    ids=["loopback", "private", "metadata", "mixed"],
)
async def test_connect_time_refusal_is_a_502_upstream_blocked(answers: list[str]) -> None:
    """The provider's hostname passes the static check but resolves inside: the request
    is refused before any socket opens, and the agent gets an OpenAI-shaped 502."""

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "api.tenant-provider.example"
        return answers

    net = SafetyNet(allowed=())
    cfg = load_config(BYO)
    app = RouterApp(cfg, client=make_upstream(cfg, resolver=resolver, before_connect=net))
    r = await chat(app, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_blocked"
    assert "sk-guard-router-key" not in r.text
    assert net.connects == []
