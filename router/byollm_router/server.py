"""The router's HTTP/1.1 server: asyncio protocols on httptools' request parser (llhttp),
serving the router's ASGI app, and the process around them (start, signals, drain).

Why our own and not uvicorn's: one router runs per tenant and its latency budget is a
fraction of a millisecond, so the server's per-request Python is on every call's critical
path. This one does only what the router needs: no WebSocket, no lifespan protocol (the app
is started and stopped directly), no proxy headers, no access log, and its ``send`` builds
the head once without re-validating headers that our own code and llhttp already checked.
Against uvicorn's httptools protocol it also adds the bounds a shared front door needs:

* **Request-head timeout.** A client has ``header_timeout_s`` to send a whole request head,
  counted from the connection's start (before its first request) or from the first byte of
  the next request on a kept-alive connection; then it gets a 408 and is closed. A client
  trickling one header byte at a time would otherwise hold a connection for ever.
* **Connection cap.** Beyond ``max_connections`` open connections a new one is answered
  with an OpenAI-shaped 503 and closed at once.
* **One write per event-loop step.** The head and the body messages written during one
  loop step leave as one ``write`` (on a stream: the SSE events of one upstream read), and
  a finished response leaves at once.

The request *body* deadline is the app's (it answers 408 itself, see ``app.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from byollm_router import errors

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

_log = logging.getLogger("byollm_router")

# Reading pauses while this much request body waits for the app to take it.
_HIGH_WATER = 64 * 1024
_REFUSED_LINGER_S = 1.0
_DISCONNECT: Message = {"type": "http.disconnect"}
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


_STATUS_LINE = {status: _status_line(status) for status in range(100, 600)}


def _closing_json(status: int, body: bytes) -> bytes:
    """A whole JSON response that closes its connection."""
    head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return _STATUS_LINE[status] + head % len(body) + body


def _raw_response(error: errors.RouterError) -> bytes:
    return _closing_json(error.status, error.body())


HEAD_TIMEOUT_RESPONSE = _raw_response(errors.request_timeout())
OVERLOADED_RESPONSE = _raw_response(errors.too_many_connections())
BAD_REQUEST_RESPONSE = _raw_response(errors.malformed_http())
INTERNAL_ERROR_BODY = errors.RouterError(
    500, "Internal router error.", "server_error", "internal_error"
).body()


class ServerState:
    """What the process shares across connections: the app, the bounds, the open
    connections and the running request tasks (both drained at shutdown)."""

    def __init__(
        self,
        app: App,
        *,
        header_timeout_s: float,
        max_connections: int,
        keep_alive_s: float = 75.0,
    ) -> None:
        self.app = app
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.keep_alive_s = keep_alive_s
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse requests, run one at a time (pipelined ones wait),
    write their responses."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        # Answer the first of several pipelined requests even if data follows a close.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.cycle: Cycle | None = None  # the request being parsed or answered
        self.pipeline: deque[Cycle] = deque()  # parsed while an earlier one runs
        self.refused = False
        self.write_paused = False
        self.read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        # Per request head being parsed.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        connections = self.state.connections
        connections.add(self)
        if len(connections) > self.state.max_connections:
            # Answer, then half-close and discard what the client sends for a moment:
            # closing at once would reset the connection and could lose the answer.
            self.refused = True
            self.transport.write(OVERLOADED_RESPONSE)
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_REFUSED_LINGER_S, self.transport.close)
            return
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol switch: the request was answered as plain HTTP
        except httptools.HttpParserError:
            self._disarm_head()
            cycle = self.cycle
            if cycle is None or not cycle.response_started:
                self.transport.write(BAD_REQUEST_RESPONSE)
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # its app sees the client gone, answers nothing
                cycle.wake()
            self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; a request in flight sees the disconnect

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self._disarm_head()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.wake()
        self.pipeline.clear()
        self._resume_writers()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume_writers()

    # --- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expect_continue = False
        self._arm_head()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._disarm_head()
        parser = self.parser
        parsed = httptools.parse_url(self._url)
        raw_path: bytes = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        http_version = parser.get_http_version()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": http_version,
            "method": parser.get_method().decode("ascii"),
            "scheme": "http",
            "path": path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "root_path": "",
            "headers": self._headers,
        }
        keep_alive = http_version != "1.0" and parser.should_keep_alive()
        running = self.cycle
        cycle = Cycle(self, scope, keep_alive, self._expect_continue)
        self.cycle = cycle
        if running is None or running.response_complete:
            self._start(cycle)
        else:  # pipelined: waits for the running one, and reading waits with it
            self.pipeline.append(cycle)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > _HIGH_WATER:
            self._pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.wake()

    # --- requests -------------------------------------------------------------------------

    def _start(self, cycle: Cycle) -> None:
        task = self.loop.create_task(cycle.run(self.state.app))
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def response_complete(self, cycle: Cycle) -> None:
        """A response was written whole: send it now, then the next request or idle."""
        self.flush()
        if not cycle.keep_alive:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        self._resume_reading()
        if self.pipeline:
            self._start(self.pipeline.popleft())
        else:
            self._idle_timer = self.loop.call_later(self.state.keep_alive_s, self._idle_expired)

    def shutdown(self) -> None:
        """Graceful stop: close an idle connection now, a busy one after its response."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    # --- writing --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data``; what is queued in one loop step leaves as one write."""
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the client's socket takes data again (or the client is gone)."""
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self.loop.create_future()
        await waiter

    def _resume_writers(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- timers and reading -----------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.state.header_timeout_s, self._head_expired)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined head trickles while a response is still being written: the 408
            # must not interleave with it. Look again one period later.
            self._arm_head()
            return
        self.flush()
        self.transport.write(HEAD_TIMEOUT_RESPONSE)
        self.transport.close()

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class Cycle:
    """One request and its response: the ASGI ``receive`` and ``send`` of one call."""

    __slots__ = (
        "body",
        "chunked",
        "delivered",
        "disconnected",
        "expect_continue",
        "keep_alive",
        "more_body",
        "proto",
        "remaining",
        "response_complete",
        "response_started",
        "scope",
        "waiter",
    )

    def __init__(
        self,
        proto: HttpProtocol,
        scope: dict[str, Any],
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.proto = proto
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body = bytearray()
        self.more_body = True
        self.delivered = False  # the last body message went to the app
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.remaining = 0  # body bytes the Content-Length still promises

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, app: App) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            # The app answers its own errors; this is a bug. Only the type is logged.
            fields = {"exc_type": type(exc).__name__}
            _log.error("unhandled error in a request", extra={"fields": fields})
            if not self.response_started and not self.disconnected:
                self._whole(500, INTERNAL_ERROR_BODY)
            else:
                self.proto.transport.close()
            if not isinstance(exc, Exception):
                raise
        else:
            if not self.response_started and not self.disconnected:
                self._whole(500, INTERNAL_ERROR_BODY)
            elif not self.response_complete and not self.disconnected:
                self.proto.transport.close()

    def _whole(self, status: int, body: bytes) -> None:
        self.response_started = True
        self.keep_alive = False
        self.proto.write(_closing_json(status, body))
        self._complete()

    # --- ASGI -------------------------------------------------------------------------------

    async def receive(self) -> Message:
        proto = self.proto
        if self.expect_continue:
            self.expect_continue = False
            if not proto.transport.is_closing():
                proto.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Wait while nothing is new: the body so far was taken, and either more is due or
        # all was delivered (then only a disconnect or the response's end is news).
        while (
            not self.body
            and (self.more_body or self.delivered)
            and not self.disconnected
            and not self.response_complete
        ):
            proto._resume_reading()
            self.waiter = proto.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected or self.response_complete:
            return _DISCONNECT
        body = bytes(self.body)
        self.body.clear()
        if not self.more_body:
            self.delivered = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Message) -> None:
        proto = self.proto
        if proto.write_paused and not self.disconnected:
            await proto.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {message['type']}")
            self._start(message["status"], message.get("headers", ()))
            return
        if self.response_complete or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected {message['type']} after the response")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            pass
        elif self.chunked:
            if body:
                proto.write(b"%x\r\n%s\r\n" % (len(body), body))
            if not more:
                proto.write(b"0\r\n\r\n")
        elif body:
            self.remaining -= len(body)
            if self.remaining < 0:
                raise RuntimeError("response body longer than its Content-Length")
            proto.write(body)
        if not more:
            if self.remaining and self.scope["method"] != "HEAD":
                raise RuntimeError("response body shorter than its Content-Length")
            self._complete()

    def _start(self, status: int, headers: Any) -> None:
        head = [_STATUS_LINE[status]]
        framed = False
        close = False
        for name, value in headers:
            name = name.lower()
            if _BAD_VALUE.search(value):  # never split a response on a relayed CR or LF
                raise RuntimeError("invalid response header value")
            if name == b"content-length":
                self.remaining = int(value)
                framed = True
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                close = True
            head.append(b"%s: %s\r\n" % (name, value))
        if not self.keep_alive and not close:
            head.append(b"connection: close\r\n")
        if not framed and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked = True
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        self.response_started = True
        self.expect_continue = False
        self.proto.write(b"".join(head))

    def _complete(self) -> None:
        self.response_complete = True
        self.wake()
        self.proto.response_complete(self)


async def serve(
    app: Any,
    host: str,
    port: int,
    *,
    header_timeout_s: float,
    max_connections: int,
    graceful_s: float = 10.0,
) -> int:
    """Start ``app``, serve until SIGTERM or SIGINT, then stop gracefully: no new
    connections, idle ones closed, requests in flight finished (up to ``graceful_s``).
    The process's exit code: 0, or 3 when the app could not start."""
    loop = asyncio.get_running_loop()
    try:
        await app.startup()
    except Exception as exc:
        _log.error("start-up failed", extra={"fields": {"exc_type": type(exc).__name__}})
        return 3
    state = ServerState(app, header_timeout_s=header_timeout_s, max_connections=max_connections)
    server = await loop.create_server(
        lambda: HttpProtocol(state), host, port, backlog=2048, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _log.info("listening", extra={"fields": {"host": host, "port": port}})
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        server.close()
        for conn in list(state.connections):
            conn.shutdown()
        if state.tasks:
            _, pending = await asyncio.wait(list(state.tasks), timeout=graceful_s)
            for task in pending:
                task.cancel()
        for conn in list(state.connections):
            conn.transport.close()
        await app.shutdown()
    return 0
