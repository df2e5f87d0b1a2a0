"""An asyncio-native httpcore network backend: the router's sockets without anyio.

httpcore's default backend goes through anyio, whose cancel scopes and checkpoints cost
tens of microseconds per read/write — a large share of the router's added latency. This
backend maps httpcore's four socket operations straight onto asyncio streams (uvloop's
when installed). It sits *under* the SSRF guard: the guard resolves and checks the host,
then asks this backend to connect to the approved address.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore

_READ_LIMIT = 1 << 20


def is_socket_readable(sock: socket.socket) -> bool:
    """True when a read would not block: data waiting, or the peer closed (EOF pending).

    An idle keep-alive connection that is readable was closed or broken by the server,
    so it must not be handed a request.
    """
    fd = sock.fileno()
    if fd < 0:
        return True
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


@contextlib.contextmanager
def _mapped(timeout_exc: type[Exception], error_exc: type[Exception]) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise timeout_exc(str(exc) or "timed out") from exc
    except (OSError, EOFError, ssl.SSLError) as exc:
        raise error_exc(str(exc) or type(exc).__name__) from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (optionally TLS) connection on asyncio streams.

    On HTTP/1.1 connections writes are coalesced until the next read: httpcore writes a
    request's head and body separately, and sending them as one segment saves a syscall
    here and a wake-up at the provider. HTTP/1.1 always reads right after writing a
    request, so nothing waits on a held write. HTTP/2 (multiplexed: one stream may write
    while another sits in ``read``) is never coalesced.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: list[bytes] = []
        self._coalesce = True  # plaintext is always HTTP/1.1 (no h2c prior knowledge)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if self._pending:
            await self._flush(timeout)
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            if timeout is None:
                return await self._reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        if self._coalesce:
            self._pending.append(buffer)
            return
        await self._send(buffer, timeout)

    async def _flush(self, timeout: float | None) -> None:  # noqa: ASYNC109
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        await self._send(data, timeout)

    async def _send(self, data: bytes, timeout: float | None) -> None:  # noqa: ASYNC109
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size() == 0:
                return  # went straight to the socket: nothing to wait for
            if timeout is None:
                await self._writer.drain()
            else:
                async with asyncio.timeout(timeout):
                    await self._writer.drain()

    async def aclose(self) -> None:
        self._pending.clear()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            await self._writer.start_tls(
                ssl_context, server_hostname=server_hostname, ssl_handshake_timeout=timeout
            )
        ssl_object = self._writer.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self._coalesce = alpn in (None, "http/1.1")
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of an idle pooled connection: anything readable (data or
            # EOF) means the server closed or broke it. asyncio reads eagerly, so look at
            # the stream's buffer/EOF first; the raw socket no longer shows them.
            reader = self._reader
            if reader.exception() is not None or reader.at_eof():
                return True
            if getattr(reader, "_eof", False) or getattr(reader, "_buffer", None):
                return True
            if self._writer.transport.is_closing():
                return True
            sock = self._writer.get_extra_info("socket")
            return sock is None or is_socket_readable(sock)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend on plain asyncio (TCP_NODELAY is asyncio's default for TCP)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=local, limit=_READ_LIMIT
                )
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not router upstreams")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
