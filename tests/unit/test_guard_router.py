"""The router really uses the guard: its client's transport, redirects, and a refusal at
connect time turned into an OpenAI-shaped 502. No packet leaves 127.0.0.1."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import httpcore
import httpx
import pytest

from byollm_router import contract as c
from byollm_router.app import RouterApp, _make_transport
from byollm_router.config import load_config
from byollm_router.guard import Allowlist, GuardedTransport, build_transport

TOKEN = "tok-guard-router-0123456789"
BYO = {
    c.BYOLLM_ROUTER_TOKEN: TOKEN,
    c.LLM_PROVIDER: "custom",
    c.LLM_BASE_URL: "https://api.tenant-provider.example/v1",
    c.LLM_API_KEY: "sk-guard-router-key",
    c.LLM_MODEL: "m",
}


class NoConnect(httpcore.AsyncNetworkBackend):
    """Fails the test on any connection attempt."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append(host)
        raise AssertionError(f"test safety net: refused to connect to {host}")

    async def sleep(self, seconds: float) -> None:  # pragma: no cover
        pass


def test_router_transport_is_guarded() -> None:
    t = _make_transport(load_config({**BYO, c.BYOLLM_UPSTREAM_ALLOWLIST: "10.96.0.0/12"}))
    assert isinstance(t, GuardedTransport)
    assert t.allowlist.admits_ip(ipaddress.ip_address("10.96.0.1"))
    assert not t.allowlist.admits("127.0.0.1")


def test_managed_transport_admits_only_the_shared_litellm_host() -> None:
    cfg = load_config(
        {c.BYOLLM_ROUTER_TOKEN: TOKEN, c.BYOLLM_MANAGED_URL: "http://litellm.platform.svc:4000/v1"}
    )
    t = _make_transport(cfg)
    assert isinstance(t, GuardedTransport)
    assert t.allowlist.admits("litellm.platform.svc")
    assert not t.allowlist.admits("langfuse.platform.svc")
    assert not t.allowlist.admits("169.254.169.254")


async def test_router_never_follows_redirects() -> None:
    """A provider redirect (here to the metadata service) is handed back verbatim; the
    router makes exactly one upstream request."""
    calls: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(  # a streamed body, as the real transport gives
            302,
            headers={"location": "http://169.254.169.254/latest/meta-data/"},
            stream=httpx.ByteStream(b"{}"),
        )

    app = RouterApp(load_config(BYO), transport=httpx.MockTransport(upstream))
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router"
        ) as client:
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": []},
                headers={"authorization": f"Bearer {TOKEN}"},
            )
    finally:
        await app.shutdown()
    assert r.status_code == 302
    assert calls == ["https://api.tenant-provider.example/v1/chat/completions"]


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

    net = NoConnect()
    app = RouterApp(
        load_config(BYO),
        transport=build_transport(Allowlist(), resolver=resolver, network_backend=net),
    )
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router"
        ) as client:
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {TOKEN}"},
            )
    finally:
        await app.shutdown()
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_blocked"
    assert "sk-guard-router-key" not in r.text
    assert net.attempts == []
