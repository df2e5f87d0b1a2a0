"""The router's asyncio-native httpcore backend, under the SSRF guard, on real sockets."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from stubs.tls import self_signed

from byollm_router.guard import Allowlist, build_transport
from byollm_router.netbackend import AsyncioBackend

NAME = "upstream.test"


async def to_loopback(host: str, port: int) -> Sequence[str]:
    return ["127.0.0.1"]


class Server:
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.connections = 0
        self.sni: list[str | None] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                if not self.answer:
                    await reader.read()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def test_tls_with_sni_verification_and_connection_reuse(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, NAME)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    stub = Server()
    server_ctx.sni_callback = lambda _sock, sni, _ctx: stub.sni.append(sni)
    server = await asyncio.start_server(stub.handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    transport = build_transport(
        Allowlist.parse(NAME),
        resolver=to_loopback,
        network_backend=AsyncioBackend(),
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    async with server, httpx.AsyncClient(transport=transport, timeout=5) as client:
        for _ in range(3):
            response = await client.get(f"https://{NAME}:{port}/v1/models")
            assert response.text == "ok"
    assert stub.sni == [NAME]
    assert stub.connections == 1  # pooled and reused


async def test_tls_wrong_name_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, NAME)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(Server().handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    transport = build_transport(
        Allowlist.parse("other.test"),
        resolver=to_loopback,
        network_backend=AsyncioBackend(),
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    async with server, httpx.AsyncClient(transport=transport, timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"https://other.test:{port}/")


async def test_read_timeout_and_refused_connection() -> None:
    stub = Server(answer=False)
    server = await asyncio.start_server(stub.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = build_transport(Allowlist.parse("127.0.0.1"), network_backend=AsyncioBackend())
    async with server, httpx.AsyncClient(transport=transport, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"http://127.0.0.1:{port}/")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{closed}/")


async def test_pooled_connection_closed_by_server_is_not_reused() -> None:
    """A provider closing an idle keep-alive connection must not fail the next request:
    asyncio reads the EOF eagerly, so the backend must report the connection readable."""
    connections = 0

    async def close_after_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # no "connection: close" header: the client believes it can reuse

    server = await asyncio.start_server(close_after_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = build_transport(Allowlist.parse("127.0.0.1"), network_backend=AsyncioBackend())
    async with server, httpx.AsyncClient(transport=transport, timeout=5) as client:
        for _ in range(3):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.text == "ok"
            await asyncio.sleep(0.05)  # let the FIN arrive
    assert connections == 3
