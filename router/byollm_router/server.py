"""The router's HTTP/1.1 server protocol: uvicorn's httptools protocol plus the two bounds
uvicorn does not have.

* **Request-head timeout.** A client has ``header_timeout_s`` to send a whole request head,
  counted from the connection's start (before the first request) or from the first byte of
  the next request on a kept-alive connection; then it gets a 408 and the connection is
  closed. uvicorn's own keep-alive timeout only covers a connection that sends nothing, so
  a client trickling one header byte at a time would otherwise hold it for ever.
* **Connection cap.** Beyond ``max_connections`` open connections a new one is answered
  with an OpenAI-shaped 503 and closed at once (uvicorn's ``limit_concurrency`` only refuses
  *requests*, after their heads arrived, with a plain-text body).

And one write per event-loop step: uvicorn writes a response's head and each body message
to the socket as it comes (a syscall each, and on a stream one per SSE event even when
many arrived in one upstream read). The protocol hands uvicorn a transport facade that
gathers what is written during one loop step and sends it as one write at the end of it,
or at once when a response completes.

The request *body* deadline is the app's (it answers 408 itself, see ``app.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from byollm_router import errors


def _raw_response(error: errors.RouterError, reason: bytes) -> bytes:
    body = error.body()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (error.status, reason, len(body), body)
    )


_REFUSED_LINGER_S = 1.0
HEAD_TIMEOUT_RESPONSE = _raw_response(errors.request_timeout(), b"Request Timeout")
OVERLOADED_RESPONSE = _raw_response(errors.too_many_connections(), b"Service Unavailable")


class CoalescingTransport:
    """An ``asyncio.Transport`` whose writes within one event-loop step leave as one write
    (scheduled with ``call_soon``; ``close`` and ``write_eof`` send what is pending first).
    Everything else is the wrapped transport's, flow control included: uvicorn's
    ``FlowControl`` watches the real one, which is at most one loop step behind."""

    __slots__ = ("_loop", "_pending", "_scheduled", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def protocol_class(header_timeout_s: float, max_connections: int) -> type[HttpToolsProtocol]:
    """uvicorn's ``http=`` protocol class with these bounds."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
            if len(self.connections) > max_connections:
                # Answer, then half-close and discard what the client sends for a moment:
                # closing at once would reset the connection and could lose the answer.
                self._refused = True
                transport.write(OVERLOADED_RESPONSE)
                if transport.can_write_eof():
                    transport.write_eof()
                self.loop.call_later(_REFUSED_LINGER_S, transport.close)
                return
            self._arm()

        def on_response_complete(self) -> None:
            # A finished response leaves now, not one loop step later (after the app's
            # epilogue): a JSON answer's head and body go out as one write, at once.
            transport = self.transport
            if isinstance(transport, CoalescingTransport):
                transport.flush()
            super().on_response_complete()

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout_s, self._head_expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A pipelined head trickles while a response is still being written: the
                # 408 must not interleave with it. Look again one period later.
                self._arm()
                return
            self.transport.write(HEAD_TIMEOUT_RESPONSE)
            self.transport.close()

    return BoundedHttpToolsProtocol
