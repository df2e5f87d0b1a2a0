"""The router's HTTP/1.1 client for its one upstream: pooled keep-alive connections on
asyncio protocols, responses parsed by httptools (llhttp, the parser uvicorn uses for the
router's own server side), every connection through the SSRF guard.

Why not httpx/httpcore: their per-request machinery (request and response models, the
pool's bookkeeping, h11's pure-Python state machine, trace hooks) cost ~300 µs of CPU per
proxied request, more than half of the router's; this client does the same work in ~20.
The router needs little of a general client: one origin, no redirects (never followed),
no cookies, no proxies, no auth flows. What it keeps:

* **Guard.** Each new connection resolves the host once (``guard.resolve_and_check``:
  refused if *any* answer is blocked), then opens the socket to the approved address
  itself. SNI and certificate verification use the hostname, the Host header keeps it.
  DNS rebinding between check and connect cannot switch the address.
* **Timeouts.** connect (DNS, TCP and TLS together), write, read (each wait for the next
  bytes) and pool (waiting for a free connection slot): httpx's exception types, so the
  failure matrix maps them as before.
* **Bounded memory.** Reading pauses while more than ``_HIGH_WATER`` bytes of an answer
  wait for the router to forward them (a slow client slows the upstream, never grows
  the buffer).
* **Safe reuse.** A connection returns to the pool only after its answer was read to the
  end and both sides agreed to keep it alive; one the server closed while idle is never
  handed a request (``connection_lost`` marks it at once).

HTTP/1.1 only (ALPN offers ``http/1.1``), as the official OpenAI and Anthropic SDKs use.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httptools
import httpx

from byollm_router import guard

Resolver = Callable[[str, int], Awaitable[list[str]]]

_HIGH_WATER = 256 * 1024  # buffered answer bytes before reading pauses
_LOW_WATER = 64 * 1024
_UNSAFE_VALUE = re.compile(rb"[\x00\r\n]")
_NO_BODY_STATUS = frozenset({204, 304})
_MAX_HEAD = 64 * 1024  # an answer's head (interim answers included) beyond this is refused


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; None waits for ever."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None


class Headers:
    """An answer's header fields as received, names lower-case (the parts of
    ``httpx.Headers`` the router reads)."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    def get(self, name: str, default: str = "") -> str:
        key = name.encode()
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        return default


class _Connection(asyncio.Protocol):
    """One upstream connection; at most one request at a time."""

    def __init__(self, origin: tuple[bytes, bytes, int]) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self.status = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._until_eof = False  # body delimited by the connection's end
        self.complete = False  # the whole answer arrived
        self._keep_alive = False  # both sides agreed to reuse the connection
        self.error: BaseException | None = None
        self._writable: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # bytes nobody asked for: this connection is unusable
            self._fail(httpx.RemoteProtocolError("unexpected data from the upstream"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the upstream switched protocols"))
            return
        except httptools.HttpParserError:
            self._fail(httpx.RemoteProtocolError("malformed HTTP answer from the upstream"))
            return
        if self._head is not None and not self._head.done():  # all of it was head
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                self._fail(httpx.RemoteProtocolError("the upstream's answer head is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._head is not None and not self.complete and self.error is None:
            if self._head.done() and self._until_eof:
                self.complete = True  # the body ran to the connection's end: done
            elif self._head.done():
                self.error = httpx.RemoteProtocolError("the upstream closed mid-answer")
            else:
                self.error = httpx.RemoteProtocolError(
                    "the upstream closed the connection without an answer"
                )
            self._wake_head()
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # --- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim (103 Early Hints …): the real answer follows
            self._headers = []
            return
        self.status = status
        framed = any(
            k == b"content-length" or (k == b"transfer-encoding" and b"chunked" in v.lower())
            for k, v in self._headers
        )
        self._until_eof = not framed and status not in _NO_BODY_STATUS
        self._wake_head()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status:  # not an interim answer's end
            self.complete = True
            self._keep_alive = self._parser.should_keep_alive()
            self._wake()

    # --- used by the pool and the response ----------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self.close()
        self._wake_head()
        self._wake()

    def _wake_head(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def park(self) -> None:
        """Idle in the pool: any data from now on is unexpected."""
        self._head = None

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and self.error is None
            and not self._until_eof
            and self._keep_alive
        )

    async def send(self, head: bytes, body: bytes | None, timeouts: Timeouts) -> None:
        """Write one request and wait for the answer's head."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._head = loop.create_future()
        self._headers = []
        self._head_bytes = 0
        self.status = 0
        self.complete = False
        self._keep_alive = False
        self._until_eof = False
        self.transport.write(head + body if body else head)
        if self._writable is not None:
            try:
                await _within(self._writable, timeouts.write)
            except TimeoutError:
                self.close()
                raise httpx.WriteTimeout("writing the request to the upstream timed out") from None
        if not self._head.done():
            try:
                await _within(self._head, timeouts.read)
            except TimeoutError:
                self.close()
                raise httpx.ReadTimeout("the upstream did not answer in time") from None
        if self.error is not None:
            self.close()
            raise self.error

    def take_whole(self) -> bytes | None:
        """The whole body, when it has all arrived and none was read yet; else None."""
        if not self.complete or self.error is not None:
            return None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def chunks(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        """The answer's body as it arrives, de-chunked."""
        chunks = self._chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
                continue
            if self.complete:
                return
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await _within(self._waiter, read_timeout)
            except TimeoutError:
                self.close()
                raise httpx.ReadTimeout("the upstream stopped sending") from None
            finally:
                self._waiter = None


async def _within(waiter: asyncio.Future[None], seconds: float | None) -> None:
    """Await ``waiter``; TimeoutError after ``seconds``. One timer on the future, without
    ``asyncio.timeout``'s per-use bookkeeping (this is on every request's path)."""
    if seconds is None:
        await waiter
        return
    timer = asyncio.get_running_loop().call_later(seconds, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An upstream answer whose body has not been read yet (the parts of
    ``httpx.Response`` the router uses)."""

    __slots__ = ("_conn", "_pool", "_released", "headers", "status_code", "stream")

    def __init__(self, conn: _Connection, pool: UpstreamClient, read_timeout: float | None) -> None:
        self._conn = conn
        self._pool = pool
        self._released = False
        self.status_code = conn.status
        self.headers = Headers(conn._headers)
        # Replaceable (the router wraps it to time the waits); iterated at most once.
        self.stream: Any = _Body(conn.chunks(read_timeout))

    def take_whole(self) -> bytes | None:
        """The body as sent, when all of it has arrived already (the common small JSON
        answer: no iteration, no waits); None when it must be read as it comes."""
        return self._conn.take_whole()

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body bytes as sent (content-encoding kept)."""
        return self.stream.__aiter__()  # type: ignore[no-any-return]

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body decoded (gzip, deflate), for the router's own reading."""
        coding = self.headers.get("content-encoding").strip().lower()
        if coding in ("", "identity"):
            async for chunk in self.aiter_raw():
                yield chunk
            return
        if coding not in ("gzip", "deflate"):
            raise httpx.DecodingError(f"unsupported content-encoding {coding!r}")
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, by header
        raw_deflate = False
        async for chunk in self.aiter_raw():
            try:
                out = decoder.decompress(chunk)
            except zlib.error:
                if coding != "deflate" or raw_deflate:
                    raise httpx.DecodingError("undecodable answer body") from None
                raw_deflate = True  # deflate without the zlib header, as some servers send
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                try:
                    out = decoder.decompress(chunk)
                except zlib.error:
                    raise httpx.DecodingError("undecodable answer body") from None
            if out:
                yield out
        tail = decoder.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        """Hand the connection back when the answer was read to its end; else close it."""
        if self._released:
            return
        self._released = True
        self._pool._release(self._conn)


class _Body(httpx.AsyncByteStream):
    __slots__ = ("_chunks",)

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks


Safety = Callable[[str, int], None]


class UpstreamClient:
    """Pooled keep-alive connections to the router's upstream, each through the guard.

    ``resolver`` replaces getaddrinfo and ``before_connect`` sees every address a socket
    is about to be opened to (both for tests: simulated DNS, a loopback-only safety net).
    """

    def __init__(
        self,
        allowlist: guard.Allowlist,
        *,
        max_connections: int = 1000,
        max_idle: int = 200,
        keepalive_expiry: float = 60.0,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        before_connect: Safety | None = None,
    ) -> None:
        self.allowlist = allowlist
        self._max = max_connections
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._resolver = resolver
        self._ssl = ssl_context
        self._before_connect = before_connect
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._open = 0  # connections in use or being opened
        self._slot_freed: asyncio.Event | None = None
        self._admitted: guard.Admitted = set()
        # The parts of each URL a request needs, by URL object: a provider's URLs are
        # built once, and reading them off ``httpx.URL`` per request costs ~10 calls.
        self._targets: dict[int, _Target] = {}
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = httpx.create_ssl_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx
        return self._ssl

    async def request(
        self,
        method: str,
        url: httpx.URL,
        headers: httpx.Headers,
        content: bytes | None,
        timeouts: Timeouts,
    ) -> Response:
        """Send one request; the answer's head is read, its body is not."""
        target = self._targets.get(id(url))
        if target is None or target.url is not url:
            guard.admit(url, self.allowlist, self._admitted)
            if len(self._targets) >= 256:
                self._targets.clear()
            target = self._targets[id(url)] = _Target(url)
        head = _request_head(method, target, headers, content)
        conn = await self._acquire(target.origin, target.host, timeouts)
        try:
            await conn.send(head, content, timeouts)
        except BaseException:
            self._release(conn)
            raise
        return Response(conn, self, timeouts.read)

    async def _acquire(
        self, origin: tuple[bytes, bytes, int], host: str, timeouts: Timeouts
    ) -> _Connection:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._expiry:
                self._open += 1
                return conn
            conn.close()
        if self._open >= self._max:
            try:
                async with asyncio.timeout(timeouts.pool):
                    while self._open >= self._max:
                        if self._slot_freed is None:
                            self._slot_freed = asyncio.Event()
                        await self._slot_freed.wait()
            except TimeoutError:
                raise httpx.PoolTimeout("no free upstream connection in time") from None
        self._open += 1
        try:
            return await self._connect(origin, host, timeouts.connect)
        except BaseException:
            self._open -= 1
            self._notify()
            raise

    async def _connect(
        self, origin: tuple[bytes, bytes, int], host: str, connect_s: float | None
    ) -> _Connection:
        scheme, _, port = origin
        tls = self._ssl_context() if scheme == b"https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                try:
                    approved = await guard.resolve_and_check(
                        host, port, self.allowlist, self._resolver
                    )
                except OSError as exc:
                    raise httpx.ConnectError(f"cannot resolve {host!r}: {exc}") from None
                last: Exception | None = None
                for ip in approved:
                    if self._before_connect is not None:
                        self._before_connect(ip, port)
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(origin),
                            ip,
                            port,
                            ssl=tls,
                            server_hostname=host if tls is not None else None,
                        )
                        return conn
                    except (OSError, ssl.SSLError) as exc:
                        last = exc
                assert last is not None
                raise httpx.ConnectError(str(last) or type(last).__name__) from None
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host!r} timed out") from None

    def _release(self, conn: _Connection) -> None:
        self._open -= 1
        if conn.reusable() and not self._closed:
            idle = self._idle.setdefault(conn.origin, [])
            if len(idle) < self._max_idle:
                conn.idle_since = time.monotonic()
                conn.park()
                idle.append(conn)
                self._notify()
                return
        conn.close()
        self._notify()

    def _notify(self) -> None:
        if self._slot_freed is not None:
            self._slot_freed.set()
            self._slot_freed = None

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class _Target:
    """What a request to ``url`` needs from it, read once. The URL passed the guard's
    static check (``guard.admit``) before this is made."""

    __slots__ = ("host", "line", "origin", "url")

    def __init__(self, url: httpx.URL) -> None:
        self.url = url  # kept alive, so its id is not reused while cached
        self.host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        self.origin = (url.raw_scheme, url.raw_host, port)
        self.line = b" %s HTTP/1.1\r\nhost: %s\r\n" % (url.raw_path, url.netloc)


def _request_head(
    method: str, target: _Target, headers: httpx.Headers, content: bytes | None
) -> bytes:
    """The request line and header block; refuses a value that would split the header."""
    lines = [method.encode() + target.line]
    for name, value in headers.raw:
        if _UNSAFE_VALUE.search(value) or _UNSAFE_VALUE.search(name):
            raise httpx.LocalProtocolError(f"header {name.decode('latin-1')!r} has a line break")
        lines.append(b"%s: %s\r\n" % (name, value))
    if content is not None:
        lines.append(b"content-length: %d\r\n" % len(content))
    lines.append(b"\r\n")
    return b"".join(lines)
