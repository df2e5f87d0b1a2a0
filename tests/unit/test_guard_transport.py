"""The guarded httpx transport over real sockets, against servers on 127.0.0.1 only.

Every test routes sockets through ``LoopbackOnly``: a network backend that raises before
connecting anywhere but 127.0.0.1/::1. So even a guard bug cannot send a packet to a
private, CGNAT, link-local or metadata address from this file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpcore
import httpx
import pytest
from stubs.loopback import Upstream, answer, serve
from stubs.tls import contexts

from byollm_router.guard import Allowlist, GuardedTransport, GuardError, build_transport


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """Records every connect; refuses (without connecting) anything but loopback."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"test safety net: refused to connect to {host}")
        self.connects.append((host, port))
        return await self.inner.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@pytest.fixture
async def stub() -> AsyncIterator[Upstream]:
    async with serve(Upstream(reply=lambda _seen: answer(200, b"ok"))) as up:
        yield up


def client(transport: GuardedTransport, **kw: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=5, **kw)  # type: ignore[arg-type]


LOOPBACK = Allowlist.parse("127.0.0.1")


async def test_allowlisted_loopback_connects(stub: Upstream) -> None:
    net = LoopbackOnly()
    async with client(build_transport(LOOPBACK, network_backend=net)) as c:
        r = await c.get(f"http://127.0.0.1:{stub.port}/v1/models")
    assert r.status_code == 200
    assert r.text == "ok"
    assert net.connects == [("127.0.0.1", stub.port)]


async def test_loopback_not_allowlisted_refused_before_connect(stub: Upstream) -> None:
    net = LoopbackOnly()
    async with client(build_transport(Allowlist(), network_backend=net)) as c:
        for url in [
            f"https://127.0.0.1:{stub.port}/v1",
            f"http://127.0.0.1:{stub.port}/v1",
            f"https://2130706433:{stub.port}/v1",
            f"https://[::ffff:127.0.0.1]:{stub.port}/v1",
        ]:
            with pytest.raises(GuardError, match=r"loopback|ipv4-mapped"):
                await c.get(url)
    assert net.connects == []
    assert stub.connections == 0


async def test_localhost_refused_unless_allowlisted(stub: Upstream) -> None:
    """The real system resolver (``localhost`` is answered from /etc/hosts)."""
    net = LoopbackOnly()
    async with client(build_transport(Allowlist(), network_backend=net)) as c:
        with pytest.raises(GuardError, match="loopback"):
            await c.get(f"https://localhost:{stub.port}/v1")
    assert stub.connections == 0
    async with client(build_transport(Allowlist.parse("localhost"), network_backend=net)) as c:
        r = await c.get(f"http://localhost:{stub.port}/v1")
    assert r.status_code == 200
    assert stub.hosts == [f"localhost:{stub.port}"]


async def test_name_resolving_to_loopback_refused_at_connect(stub: Upstream) -> None:
    """A name that passes the static check is caught after resolution, before connecting."""
    net = LoopbackOnly()

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with client(build_transport(Allowlist(), resolver=resolver, network_backend=net)) as c:
        with pytest.raises(GuardError, match=r"resolves to 127\.0\.0\.1 \(loopback\)"):
            await c.get(f"https://innocent.example:{stub.port}/v1")
    assert net.connects == []
    assert stub.connections == 0


async def test_dns_rebinding_cannot_switch_the_address(tmp_path: Path) -> None:
    """The resolver answers loopback, then a private address: the socket goes to the
    first (checked) answer; httpcore never resolves again for that connection, and a
    new connection that gets the private answer is refused without a packet."""
    stub = Upstream()
    server_ctx, trust = contexts(tmp_path, "rebind.test")
    answers = [["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]]
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[len(calls) - 1]

    net = LoopbackOnly()
    async with serve(stub, tls=server_ctx):
        t = build_transport(LOOPBACK, resolver=rebinding, network_backend=net, verify=trust)
        async with client(t) as c:
            r1 = await c.get(f"https://rebind.test:{stub.port}/a")
            r2 = await c.get(f"https://rebind.test:{stub.port}/b")  # pooled connection
        assert (r1.status_code, r2.status_code) == (200, 200)
        assert calls == ["rebind.test"]  # checked once, connected to what was checked
        assert net.connects == [("127.0.0.1", stub.port)]
        assert stub.hosts == [f"rebind.test:{stub.port}"] * 2  # Host header keeps the name

        t = build_transport(LOOPBACK, resolver=rebinding, network_backend=net, verify=trust)
        async with client(t) as c:
            with pytest.raises(GuardError, match=r"10\.0\.0\.1 \(private\)"):
                await c.get(f"https://rebind.test:{stub.port}/c")
        assert net.connects == [("127.0.0.1", stub.port)]  # no new socket
        assert stub.connections == 1


async def test_tls_sni_and_verification_use_the_hostname(tmp_path: Path) -> None:
    """Pinned to 127.0.0.1, yet SNI is the name and the certificate is verified for it."""
    stub = Upstream()
    server_ctx, trust = contexts(tmp_path, "upstream.test")

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with serve(stub, tls=server_ctx):
        net = LoopbackOnly()
        t = build_transport(LOOPBACK, resolver=resolver, network_backend=net, verify=trust)
        async with client(t) as c:
            r = await c.get(f"https://upstream.test:{stub.port}/v1/models")
        assert r.status_code == 200
        assert stub.sni == ["upstream.test"]
        assert stub.hosts == [f"upstream.test:{stub.port}"]
        assert net.connects == [("127.0.0.1", stub.port)]

        # Same pinned IP, another name: the certificate does not match, so TLS fails.
        t = build_transport(LOOPBACK, resolver=resolver, network_backend=net, verify=trust)
        async with client(t) as c:
            with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
                await c.get(f"https://other.test:{stub.port}/v1/models")


async def test_redirects_not_followed_and_guarded_if_they_were(stub: Upstream) -> None:
    location = ("location", "http://169.254.169.254/latest/meta-data/iam")
    stub.reply = lambda _seen: answer(302, b"", location)
    net = LoopbackOnly()
    async with client(build_transport(LOOPBACK, network_backend=net)) as c:
        assert c.follow_redirects is False
        r = await c.get(f"http://127.0.0.1:{stub.port}/v1")
        assert r.status_code == 302  # handed back, not followed
        # A misconfigured client that follows: the hop is checked by the transport too.
        with pytest.raises(GuardError, match="metadata"):
            await c.get(f"http://127.0.0.1:{stub.port}/v1", follow_redirects=True)
    assert net.connects == [("127.0.0.1", stub.port)]


async def test_environment_proxy_is_ignored(
    stub: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit transport means httpx never routes via HTTP(S)_PROXY (a bypass)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://10.0.0.1:3128")
    net = LoopbackOnly()
    async with client(build_transport(LOOPBACK, network_backend=net)) as c:
        r = await c.get(f"http://127.0.0.1:{stub.port}/v1")
    assert r.status_code == 200
    assert net.connects == [("127.0.0.1", stub.port)]


async def test_resolution_failure_and_timeout_map_to_httpx_errors() -> None:
    """Unresolvable -> ConnectError (router: 503); slow DNS -> ConnectTimeout (504)."""

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["8.8.8.8"]

    net = LoopbackOnly()
    async with client(build_transport(Allowlist(), resolver=nxdomain, network_backend=net)) as c:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await c.get("https://nx.example/v1")
    t = build_transport(Allowlist(), resolver=slow, network_backend=net)
    async with httpx.AsyncClient(transport=t, timeout=httpx.Timeout(5, connect=0.05)) as c:
        with pytest.raises(httpx.ConnectTimeout):
            await c.get("https://slow.example/v1")
    assert net.connects == []


def test_bypassing_options_refused() -> None:
    with pytest.raises(TypeError, match="bypass"):
        build_transport(Allowlist(), proxy="http://10.0.0.1:3128")
    with pytest.raises(TypeError, match="bypass"):
        build_transport(Allowlist(), uds="/var/run/docker.sock")


async def test_static_verdict_cache_is_per_origin(stub: Upstream) -> None:
    """The transport caches the static check per (scheme, host, port, userinfo): an admitted
    origin does not admit its neighbours, userinfo or another scheme."""
    net = LoopbackOnly()
    async with client(build_transport(LOOPBACK, network_backend=net)) as c:
        assert (await c.get(f"http://127.0.0.1:{stub.port}/a")).status_code == 200
        assert (await c.get(f"http://127.0.0.1:{stub.port}/b")).status_code == 200
        for url in [
            f"http://127.0.0.2:{stub.port}/a",
            f"http://user@127.0.0.1:{stub.port}/a",
            f"http://localhost:{stub.port}/a",
            "http://169.254.169.254/latest",
        ]:
            with pytest.raises(GuardError):
                await c.get(url)
    assert net.connects == [("127.0.0.1", stub.port)]
