"""The router's upstream client over real sockets, against servers on 127.0.0.1 only.

Every client here has a ``before_connect`` safety net that raises before a socket is
opened anywhere but 127.0.0.1, so even a guard bug cannot send a packet to a private,
CGNAT, link-local or metadata address from this file.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import httpx
import pytest
from stubs.loopback import SafetyNet, Seen, Upstream, answer, serve
from stubs.tls import contexts

from byollm_router import upstream
from byollm_router.guard import Allowlist, GuardError
from byollm_router.upstream import Timeouts, UpstreamClient

LOOPBACK = Allowlist.parse("127.0.0.1")
T = Timeouts(connect=2, read=2, write=2, pool=2)
JSON = httpx.Headers({"content-type": "application/json"})


def client(allow: Allowlist = LOOPBACK, **kw: object) -> tuple[UpstreamClient, SafetyNet]:
    net = SafetyNet()
    return UpstreamClient(allow, before_connect=net, **kw), net  # type: ignore[arg-type]


async def fetch(c: UpstreamClient, url: str, body: bytes | None = b"{}", **kw: object) -> bytes:
    r = await c.request("POST", httpx.URL(url), JSON, body, kw.get("t", T))  # type: ignore[arg-type]
    try:
        return b"".join([chunk async for chunk in r.aiter_bytes()])
    finally:
        await r.aclose()


async def test_keep_alive_reuses_one_connection_and_sends_host_and_length() -> None:
    async with serve(Upstream()) as up:
        c, net = client()
        assert await fetch(c, up.url + "/v1/a", b'{"x":1}') == b'{"ok":true}'
        assert await fetch(c, up.url + "/v1/b", b"{}") == b'{"ok":true}'
        await c.aclose()
    assert up.connections == 1
    assert net.connects == [("127.0.0.1", up.port)]
    first = up.seen[0]
    assert first.line == "POST /v1/a HTTP/1.1"
    assert first.headers["host"] == f"127.0.0.1:{up.port}"
    assert first.headers["content-length"] == "7"
    assert first.body == b'{"x":1}'


async def test_connection_closed_by_the_server_while_idle_is_not_reused() -> None:
    async with serve(Upstream(close_after=True)) as up:
        c, _ = client()
        for _ in range(3):
            assert await fetch(c, up.url + "/v1") == b'{"ok":true}'
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection idles
        await c.aclose()
    assert up.connections == 3


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + answer(200, b"after hints"),
            b"after hints",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n",
            b"zipped answer",
        ),
    ],
    ids=["chunked", "interim-answer", "gzip"],
)
async def test_answer_framings(raw: bytes, body: bytes) -> None:
    if b"gzip" in raw:
        packed = gzip.compress(body)
        raw = raw % len(packed) + packed
    async with serve(Upstream(reply=lambda _s: raw)) as up:
        c, _ = client()
        assert await fetch(c, up.url + "/v1") == body
        await c.aclose()


async def test_body_until_the_connection_ends_and_then_a_new_connection() -> None:
    up = Upstream(reply=lambda _s: b"HTTP/1.0 200 OK\r\n\r\nuntil eof", close_after=True)
    async with serve(up):
        c, _ = client()
        assert await fetch(c, up.url + "/v1") == b"until eof"
        assert await fetch(c, up.url + "/v1") == b"until eof"
        await c.aclose()
    assert up.connections == 2


async def test_closed_mid_answer_and_unanswered_are_protocol_errors() -> None:
    up = Upstream(
        reply=lambda _s: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}", close_after=True
    )
    async with serve(up):
        c, _ = client()
        with pytest.raises(httpx.RemoteProtocolError, match="mid-answer"):
            await fetch(c, up.url + "/v1")
        up.reply = lambda _s: None
        with pytest.raises(httpx.RemoteProtocolError, match="without an answer"):
            await fetch(c, up.url + "/v1")
        await c.aclose()


async def test_oversized_answer_head_is_refused() -> None:
    huge = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 200_000 + b"\r\n\r\n"
    async with serve(Upstream(reply=lambda _s: huge)) as up:
        c, _ = client()
        with pytest.raises(httpx.RemoteProtocolError, match="head is too large"):
            await fetch(c, up.url + "/v1")
        await c.aclose()


async def test_header_with_a_line_break_is_never_sent() -> None:
    async with serve(Upstream()) as up:
        c, _ = client()
        bad = httpx.Headers({"x-title": "a\r\nx-injected: 1"})
        with pytest.raises(httpx.LocalProtocolError, match="x-title"):
            await c.request("POST", httpx.URL(up.url + "/v1"), bad, b"{}", T)
        await c.aclose()
    assert up.seen == []


async def test_read_and_pool_timeouts() -> None:
    def slow(_s: Seen) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}"  # 8 bytes never come

    async with serve(Upstream(reply=slow)) as up:
        c, _ = client(max_connections=1)
        quick = Timeouts(connect=2, read=0.2, write=2, pool=0.2)
        r = await c.request("POST", httpx.URL(up.url + "/v1"), JSON, b"{}", quick)
        # The one connection is busy with r: a second request waits for it, then gives up.
        with pytest.raises(httpx.PoolTimeout):
            await c.request("POST", httpx.URL(up.url + "/v1"), JSON, b"{}", quick)
        with pytest.raises(httpx.ReadTimeout):
            async for _ in r.aiter_raw():
                pass
        await r.aclose()
        # The slot is free again.
        r = await c.request("POST", httpx.URL(up.url + "/v1"), JSON, b"{}", quick)
        await r.aclose()
        await c.aclose()
    assert up.connections == 2  # the connection that timed out was closed, not reused


async def test_a_slow_reader_pauses_the_upstream_instead_of_buffering() -> None:
    big = b"x" * (8 << 20)
    async with serve(Upstream(reply=lambda _s: answer(200, big))) as up:
        c, _ = client()
        r = await c.request("POST", httpx.URL(up.url + "/v1"), JSON, b"{}", T)
        await asyncio.sleep(0.3)  # the router's client is slow: nothing is read meanwhile
        buffered = r._conn._buffered
        got = sum([len(chunk) async for chunk in r.aiter_raw()])
        await r.aclose()
        await c.aclose()
    assert got == len(big)
    assert buffered <= upstream._HIGH_WATER + (1 << 20), buffered


async def test_connect_time_refusal_opens_no_socket() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]  # one public, one private answer: hostile

    c, net = client(Allowlist(), resolver=resolver)
    with pytest.raises(GuardError, match=r"10\.0\.0\.7 \(private\)"):
        await fetch(c, "https://api.provider.example/v1")
    assert net.connects == []


async def test_resolution_failure_and_slow_dns_map_to_connect_errors() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["127.0.0.1"]

    c, net = client(Allowlist(), resolver=nxdomain)
    with pytest.raises(httpx.ConnectError, match="cannot resolve"):
        await fetch(c, "https://nx.example/v1")
    c, net = client(Allowlist(), resolver=slow)
    with pytest.raises(httpx.ConnectTimeout):
        await fetch(c, "https://slow.example/v1", t=Timeouts(0.05, 2, 2, 2))
    assert net.connects == []


async def test_tls_pinned_to_the_checked_address_sni_and_certificate_on_the_name(
    tmp_path: Path,
) -> None:
    """Resolved once to 127.0.0.1 (allowlisted), then DNS rebinds to a private address:
    the pooled connection stays on the checked address, SNI, certificate and Host use the
    name, and a new connection that gets the private answer is refused without a packet."""
    answers = [["127.0.0.1"], ["10.0.0.1"]]

    async def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    up, (server_ctx, trust) = Upstream(), contexts(tmp_path, "upstream.test")
    async with serve(up, tls=server_ctx):
        c, net = client(resolver=rebinding, ssl_context=trust)
        url = f"https://upstream.test:{up.port}/v1"
        assert await fetch(c, url) == b'{"ok":true}'
        assert await fetch(c, url) == b'{"ok":true}'  # pooled: no second resolution
        assert up.sni == ["upstream.test"]
        assert up.hosts == [f"upstream.test:{up.port}"] * 2
        await c.aclose()  # pool emptied: the next request resolves again
        c2, net2 = client(resolver=rebinding, ssl_context=trust)
        with pytest.raises(GuardError, match=r"10\.0\.0\.1 \(private\)"):
            await fetch(c2, url)
    assert net.connects == [("127.0.0.1", up.port)]
    assert net2.connects == []


async def test_tls_certificate_for_another_name_fails_to_connect(tmp_path: Path) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    up, (server_ctx, trust) = Upstream(), contexts(tmp_path, "upstream.test")
    async with serve(up, tls=server_ctx):
        c, _ = client(resolver=resolver, ssl_context=trust)
        with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
            await fetch(c, f"https://other.test:{up.port}/v1")
    assert up.seen == []


async def test_static_check_runs_before_anything_else() -> None:
    c, net = client()
    for url in ["http://169.254.169.254/latest", "http://user@127.0.0.1:1/a", "file:///etc/x"]:
        with pytest.raises(GuardError):
            await fetch(c, url)
    assert net.connects == []
