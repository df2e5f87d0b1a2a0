"""The router's ASGI app: authenticate, read, default the model, forward, stream back.

Written as a bare ASGI callable rather than on a framework's Request/Response objects: the
hot path is a dict lookup, one header scan, one JSON parse and one upstream call, which
keeps the added latency well under a millisecond. Bodies that need no change are forwarded
as the exact bytes received; upstream bytes go back as received (streams chunk by chunk).

Failure semantics: an upstream HTTP answer of any status passes through
verbatim; only failures without an answer become router errors (503 unreachable,
504 timeout, 502 reset/blocked). There is one upstream and no fallback.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import orjson

from byollm_router import autoroute, errors, guard, overhead, upstream
from byollm_router.config import RouterConfig
from byollm_router.contract import Mode
from byollm_router.logging import RequestLog
from byollm_router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from byollm_router.metrics import Metrics
from byollm_router.protocols import calls as protocol_calls
from byollm_router.providers import LocalAnswer, UpstreamCall, build_provider
from byollm_router.providers.base import (
    FORWARDED_REQUEST_HEADERS,
    ResponseTranslator,
    dump_json,
    json_loads,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
SSE = b"text/event-stream"

# Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection and are never relayed,
# in either direction. Any field a message's Connection header names is hop-by-hop too.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Upstream response headers not copied to the client: hop-by-hop, framing the router redoes
# itself, and state that belongs to the upstream (cookies of either RFC, alt-svc).
_DROP_RESPONSE_HEADERS = _HOP_BY_HOP | {
    b"content-length",
    b"server",
    b"date",
    b"set-cookie",
    b"set-cookie2",
    b"alt-svc",
}
_FORWARDED = frozenset(h.encode() for h in FORWARDED_REQUEST_HEADERS)
_HEADER_SAFE = re.compile(rb"[\x20-\x7e]*\Z")  # printable ASCII: valid to send on as-is

# A non-streamed answer that needs no translation is sent whole (with Content-Length, and a
# clean 502 if the upstream breaks off) up to this size, and streamed through beyond it.
_PASSTHROUGH_WHOLE_BYTES = 256 * 1024

# A request body whose declared size exceeds the limit is drained (so the client reads our
# 413 instead of a reset) unless it is absurdly large; then the connection is just closed.
_DRAIN_FACTOR = 8


class _ClientGone(Exception):
    """The client disconnected while we were reading its request."""


class _Ctx:
    """Per-request bookkeeping for the log line and metrics (metadata only)."""

    __slots__ = (
        "began",
        "category",
        "error",
        "extra_headers",
        "started",
        "status",
        "stream",
        "upstream",
        "upstream_head_s",
        "upstream_s",
        "wire",
    )

    def __init__(self) -> None:
        self.status = 500
        self.upstream_s: float | None = None  # time spent waiting on the upstream
        self.wire = "openai"  # the shape of the router's own error bodies
        self.upstream: int | None = None  # the upstream's status
        self.upstream_head_s: float | None = None  # the wait for the upstream's head
        self.category: str | None = None
        self.error: str | None = None
        self.stream: bool | None = None
        self.started = False
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.began: float | None = None  # set: the answer reports the router's added time


class _Watch:
    """Per-request guards while an answer is relayed, at no cost per chunk.

    * Disconnect: a task waits on ``receive`` and cancels the request task when the client
      goes (so the upstream request is closed too and the provider stops generating).
    * Stall: the server's ``send`` waits while the client's buffers are full; not for ever. Each
      ``send`` stamps when it began; one timer per request looks every ``stall_s`` and
      cancels the request task when a send has been waiting that long. (A timeout around
      every send would arm and cancel a timer per streamed chunk.)
    """

    __slots__ = ("_loop", "_stall_s", "_target", "_timer", "finished", "gone", "sending", "stalled")

    def __init__(self, target: asyncio.Task[Any], stall_s: float) -> None:
        self.gone = False
        self.stalled = False
        self.finished = False
        self.sending: float | None = None  # loop time the pending send began
        self._target = target
        self._stall_s = stall_s
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(stall_s, self._check)

    async def run(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.finished and not self.stalled:
                    self.gone = True
                    self._target.cancel()
                return

    def _check(self) -> None:
        began = self.sending
        now = self._loop.time()
        if began is not None and now - began >= self._stall_s and not self.gone:
            self.stalled = True
            self._target.cancel()
            return
        self._timer = self._loop.call_at((began or now) + self._stall_s, self._check)

    def guarded(self, send: Send) -> Send:
        """``send`` with its start stamped for the stall check."""
        loop = self._loop

        async def watched(message: Message) -> None:
            self.sending = loop.time()
            await send(message)
            self.sending = None

        return watched

    def close(self) -> None:
        self.finished = True
        self._timer.cancel()


def make_upstream(cfg: RouterConfig, **kwargs: Any) -> upstream.UpstreamClient:
    """Every upstream connection goes through the SSRF guard (resolve, refuse private,
    loopback and metadata addresses unless allowlisted, pin the resolved address).
    ``kwargs`` go to the client (tests: a simulated resolver, a safety net).

    In Managed mode the shared LiteLLM's host is admitted: the operator sets that URL,
    not the tenant, and it is in-cluster by design.
    """
    entries = [cfg.allowlist or ""]
    if cfg.mode is Mode.MANAGED:
        entries.append(httpx.URL(cfg.base_url).host)
    allowlist = guard.Allowlist.parse(",".join(e for e in entries if e), cfg.api_server_host)
    return upstream.UpstreamClient(allowlist, **kwargs)


def _is_guard_refusal(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, guard.GuardError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_upstream_error(exc: BaseException) -> errors.RouterError:
    """An upstream failure that produced no HTTP answer, as the router's own error."""
    if _is_guard_refusal(exc):
        return errors.upstream_blocked()
    if isinstance(exc, httpx.PoolTimeout):
        return errors.upstream_overloaded()
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return errors.upstream_unreachable()
    if isinstance(exc, httpx.TimeoutException):
        return errors.upstream_timeout()
    return errors.upstream_broken()


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        body = json_loads(raw)
    except ValueError:
        raise errors.bad_json() from None
    if not isinstance(body, dict):
        raise errors.bad_json()
    return body


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The field names listed in the Connection header(s), lower-case (RFC 9110 §7.6.1)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def _response_headers(
    raw: list[tuple[bytes, bytes]], keep_framing: bool
) -> list[tuple[bytes, bytes]]:
    out = []
    named = connection_tokens(raw)
    for name, value in raw:
        lname = name.lower()
        if lname in _DROP_RESPONSE_HEADERS or lname in named:
            continue
        if not keep_framing and lname in (b"content-encoding", b"content-type"):
            continue
        out.append((lname, value))
    return out


class RouterApp:
    """One tenant's router. ``client`` replaces the upstream client built from ``cfg``
    (tests: one with a simulated resolver)."""

    def __init__(self, cfg: RouterConfig, *, client: upstream.UpstreamClient | None = None) -> None:
        self.cfg = cfg
        self.provider = build_provider(cfg)
        self.metrics = Metrics()
        self.log = RequestLog(cfg.tenant)
        self._token = cfg.router_token.get_secret_value().encode()
        self._client = client
        self._upstream: upstream.UpstreamClient | None = None
        self._timeouts = upstream.Timeouts(None, None, None, None)
        self._routes: dict[str, tuple[str, bytes, bool]] = {
            "/v1/chat/completions": ("chat_completions", b"POST", True),
            "/v1/embeddings": ("embeddings", b"POST", True),
            "/v1/models": ("models", b"GET", True),
            "/healthz": ("healthz", b"GET", False),
            "/readyz": ("readyz", b"GET", False),
            "/metrics": ("metrics", b"GET", False),
            "/drainz": ("drainz", b"GET", False),
            **protocol_calls.ROUTES,
        }
        # Set by the pod's preStop hook (GET /drainz): from then on every response closes its
        # connection, so keep-alive clients move to the pods the Service now routes to while
        # this one still answers; none is left on an idle connection the shutdown would cut.
        self.draining = False

    # --- lifecycle ------------------------------------------------------------------------

    async def startup(self) -> None:
        self._upstream = self._client or make_upstream(self.cfg)
        self._timeouts = upstream.Timeouts(
            connect=self.cfg.connect_timeout_s,
            read=self.cfg.upstream_timeout_s,
            write=self.cfg.upstream_timeout_s,
            pool=self.cfg.connect_timeout_s,
        )
        self.log.event(
            "started",
            mode=self.cfg.mode.value,
            provider=self.provider.name,
            auto=self.cfg.routing.auto,
        )

    async def shutdown(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None

    async def _send(
        self, call: UpstreamCall, timeouts: upstream.Timeouts | None = None
    ) -> upstream.Response:
        """Send through the guarded, pooled upstream client; the answer's body unread."""
        if self._upstream is None:
            raise RuntimeError("router not started")
        return await self._upstream.request(
            call.method, call.url, call.headers, call.content, timeouts or self._timeouts
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, _closing(send) if self.draining else send)

    # --- dispatch -------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        entry = self._routes.get(path) or self._routes.get(path.rstrip("/"))
        if entry is None and path.startswith(protocol_calls.ITEM_PREFIX):
            entry = protocol_calls.ITEM_ENTRY
        ctx = _Ctx()
        route = entry[0] if entry else "unknown"
        if route in protocol_calls.ANTHROPIC_WIRE_ROUTES:
            ctx.wire = "anthropic"
        try:
            if entry is None:
                raise errors.not_found()
            _, method, needs_auth = entry
            if (
                scope["method"].encode() != method
                and not (method == b"GET" and scope["method"] == "HEAD")
                and not (route == protocol_calls.RESPONSE_ITEM and scope["method"] == "DELETE")
            ):
                raise errors.method_not_allowed()
            if not needs_auth:
                await self._probe(route, send, ctx)
                return
            ctx.began = started  # its answer carries the router's own time so far
            auth = clen = xkey = None
            client_headers: dict[str, str] = {}
            hop: bytes | None = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    auth = value
                elif name == b"content-length":
                    clen = value
                elif name == b"connection":
                    hop = value if hop is None else hop + b"," + value
                elif name == b"x-api-key":
                    xkey = value
                elif name in _FORWARDED:
                    value = value.strip()
                    if value and _HEADER_SAFE.match(value):  # others cannot be re-sent safely
                        client_headers[name.decode()] = value.decode()
            if hop is not None and client_headers:  # fields the client made hop-by-hop
                for token in connection_tokens([(b"connection", hop)]):
                    client_headers.pop(token.decode("latin-1"), None)
            if auth is None and xkey is not None and route in protocol_calls.X_API_KEY_ROUTES:
                auth = b"bearer " + xkey.strip()
            if not self._authorized(auth):
                raise errors.unauthorized()
            if route == "models":
                await self._models(client_headers, receive, send, ctx)
            elif route == protocol_calls.RESPONSE_ITEM:
                call = protocol_calls.response_item(
                    self.provider, scope["method"], path, scope["query_string"], client_headers
                )
                await self._proxy(route, call, False, receive, send, ctx)
            else:
                try:
                    async with asyncio.timeout(self.cfg.client_body_timeout_s):
                        raw = await self._read_body(receive, clen)
                except TimeoutError:
                    raise errors.request_timeout() from None
                call = await self._body_call(route, raw, client_headers, ctx)
                await self._proxy(route, call, ctx.stream is True, receive, send, ctx)
        except errors.RouterError as exc:
            ctx.error = exc.code
            if not ctx.started:
                close = [(b"connection", b"close")] if exc.close else None
                await self._respond(send, ctx, exc.status, exc.body(ctx.wire), headers=close)
        except _ClientGone:
            ctx.status, ctx.error = 499, "client_disconnected"
        except Exception as exc:
            ctx.error = "internal_error"
            self.log.event("internal error", route=route, exc_type=type(exc).__name__)
            if not ctx.started:
                err = errors.RouterError(
                    500, "Internal router error.", "server_error", "internal_error"
                )
                await self._respond(send, ctx, 500, err.body(ctx.wire))
        finally:
            if entry is None or entry[2]:
                self._record(route, scope["method"], ctx, started)

    def _record(self, route: str, method: str, ctx: _Ctx, started: float) -> None:
        """Metrics and the log line, once the answer has left (off its latency)."""
        elapsed = time.perf_counter() - started
        status = str(ctx.status)
        self.metrics.requests.labels(route, status).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        if ctx.upstream is not None:
            self.metrics.upstream.labels(route, str(ctx.upstream)).inc()
        if ctx.upstream_head_s is not None:
            self.metrics.upstream_latency.labels(route).observe(ctx.upstream_head_s)
        if ctx.upstream_s is not None:
            added = max(elapsed - ctx.upstream_s, 0.0)
            self.metrics.overhead.labels(route, self.provider.name).observe(added)
        self.log.request(
            route=route,
            method=method,
            status=ctx.status,
            latency_ms=elapsed * 1000.0,
            category=ctx.category,
            upstream_status=ctx.upstream,
            error=ctx.error,
            stream=ctx.stream,
        )

    def _authorized(self, value: bytes | None) -> bool:
        if value is None or len(value) < 8 or value[:7].lower() != b"bearer ":
            # Still compare, so a missing header costs the same as a wrong one.
            hmac.compare_digest(b"", self._token)
            return False
        return hmac.compare_digest(value[7:].strip(), self._token)

    async def _probe(self, route: str, send: Send, ctx: _Ctx) -> None:
        if route == "drainz":
            self.draining = True
            await asyncio.sleep(self.cfg.drain_seconds)
            await self._respond(_closing(send), ctx, 200, b'{"status":"draining"}')
        elif route == "metrics":
            self.metrics.requests.labels(route, "200").inc()
            await self._respond(
                send, ctx, 200, self.metrics.render(), METRICS_CONTENT_TYPE.encode()
            )
        elif route == "readyz" and self._upstream is None:
            await self._respond(send, ctx, 503, b'{"status":"starting"}')
        else:
            await self._respond(send, ctx, 200, b'{"status":"ok"}')

    async def _respond(
        self,
        send: Send,
        ctx: _Ctx,
        status: int,
        body: bytes,
        content_type: bytes = JSON,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        out = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if headers:
            out.extend(headers)
        await self._start(send, ctx, status, out)
        await send({"type": "http.response.body", "body": body})

    async def _start(
        self, send: Send, ctx: _Ctx, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Begin the answer: the route's own headers and, on routes that go upstream, the
        router's added time so far (``x-byollm-overhead-ms``)."""
        headers.extend(ctx.extra_headers)
        if ctx.began is not None:
            headers.append(overhead.header(ctx.began, ctx.upstream_s))
        ctx.status = status
        ctx.started = True
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _read_body(self, receive: Receive, clen: bytes | None) -> bytes:
        limit = self.cfg.max_request_bytes
        if clen is not None:
            try:
                declared = int(clen)
            except ValueError:
                raise errors.bad_field("content-length", "Invalid Content-Length.") from None
            if declared > limit:
                if declared <= limit * _DRAIN_FACTOR:
                    await self._drain(receive)
                raise errors.too_large(limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > limit:
                raise errors.too_large(limit)
            return body
        chunks = [body]
        total = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                if total <= limit * _DRAIN_FACTOR and message.get("more_body"):
                    await self._drain(receive)
                raise errors.too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _drain(self, receive: Receive) -> None:
        budget = self.cfg.max_request_bytes * _DRAIN_FACTOR
        while budget > 0:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            budget -= len(message.get("body", b""))
            if not message.get("more_body"):
                return

    # --- routes ---------------------------------------------------------------------------

    async def _body_call(
        self, route: str, raw: bytes, client_headers: dict[str, str], ctx: _Ctx
    ) -> UpstreamCall:
        """The provider's call for a route with a JSON body. Chat completions and the
        Responses and Messages APIs get model defaulting and auto-routing (which also sets
        ``ctx.stream`` from the body); embeddings go as sent and never stream."""
        body = _loads(raw)
        if route == "chat_completions":
            content = await self._choose_model(body, raw, ctx)
            return self.provider.chat(body, content, client_headers)
        if route not in protocol_calls.X_API_KEY_ROUTES:
            return self.provider.embeddings(body, raw, client_headers)
        # The Responses and Messages APIs: the provider's call is a pass-through or a
        # translation.
        content = await self._choose_model(
            body,
            raw,
            ctx,
            view=lambda: protocol_calls.auto_view(route, body),
            routed=route != protocol_calls.COUNT_TOKENS,
            auto_is_default=True,
        )
        limit = self.cfg.max_buffered_response_bytes
        if route == protocol_calls.RESPONSES:
            return protocol_calls.responses(self.provider, body, content, client_headers, limit)
        if route == protocol_calls.MESSAGES:
            return protocol_calls.messages(self.provider, body, content, client_headers, limit)
        return protocol_calls.count_tokens(self.provider, content, client_headers)

    async def _choose_model(
        self,
        body: dict[str, Any],
        raw: bytes,
        ctx: _Ctx,
        view: Callable[[], dict[str, Any]] | None = None,
        routed: bool = True,
        auto_is_default: bool = False,
    ) -> bytes:
        """Auto-route or default ``body["model"]`` in place; the bytes to send upstream
        (``raw`` itself when nothing changed). ``view`` is what the auto-router reads when
        the wire format is not chat completions; ``auto_is_default``: ``"auto"`` without
        an auto-router table means the configured model."""
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise errors.bad_field("model", "model must be a string.")
        changed = False
        if routed and autoroute.wants_auto(body, self.cfg.routing):
            decision = await autoroute.decide(
                view() if view is not None else body,
                self.cfg.routing,
                self.cfg.model or "",
                self._classify,
                self.cfg.autoroute_timeout_s,
                long_context_tokens=self.cfg.long_context_tokens,
            )
            body["model"] = decision.model
            changed = True
            ctx.category = decision.category.value
            self.metrics.categories.labels(ctx.category).inc()
            ctx.extra_headers = [
                (b"x-byollm-category", ctx.category.encode()),
                (b"x-byollm-model", decision.model.encode("utf-8", "replace")),
            ]
        elif (not model or (auto_is_default and model == autoroute.AUTO_MODEL)) and self.cfg.model:
            body["model"] = self.cfg.model
            changed = True
        ctx.stream = body.get("stream") is True
        return dump_json(body) if changed else raw

    async def _models(
        self, client_headers: dict[str, str], receive: Receive, send: Send, ctx: _Ctx
    ) -> None:
        answer = self.provider.models(client_headers)
        if isinstance(answer, LocalAnswer):
            await self._respond(send, ctx, answer.status, answer.body)
            return
        await self._proxy("models", answer, False, receive, send, ctx)

    # --- the classifier for the auto-router -----------------------------------------------

    async def _classify(self, messages: list[dict[str, Any]], model: str, timeout_s: float) -> str:
        """A non-streaming call to the *same* upstream (the tenant's provider in BYO, the
        shared LiteLLM in Managed): the classifier never touches other infrastructure."""
        body = autoroute.classifier_request_body(
            messages, model, constrained=self.cfg.autoroute_constrained
        )
        call = self.provider.chat(body, dump_json(body), {})
        response = await self._send(
            call, upstream.Timeouts(timeout_s, timeout_s, timeout_s, timeout_s)
        )
        limit = self.cfg.max_buffered_response_bytes
        try:
            if not 200 <= response.status_code < 300:
                raise errors.upstream_broken()
            held, complete = await self._read_capped("classifier", response.aiter_bytes(), limit)
        finally:
            await response.aclose()
        if not complete:
            raise errors.upstream_too_large(limit)
        data = b"".join(held)
        if call.translator is not None:
            data = call.translator.body(data)
        answer = orjson.loads(data)
        content = answer["choices"][0]["message"].get("content")
        return content if isinstance(content, str) else ""

    # --- upstream ---------------------------------------------------------------------------

    async def _proxy(
        self,
        route: str,
        call: UpstreamCall,
        stream: bool,
        receive: Receive,
        send: Send,
        ctx: _Ctx,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task, self.cfg.client_write_timeout_s)
        watcher = asyncio.create_task(watch.run(receive))
        try:
            await self._forward(route, call, stream, watch.guarded(send), ctx, watch)
        except asyncio.CancelledError:
            if watch.stalled:
                # The client stopped reading: return with the answer unfinished, the server
                # closes the connection, and leaving _forward closed the upstream response
                # (the provider stops).
                task.uncancel()
                ctx.error = "client_stalled"
            elif watch.gone:
                task.uncancel()
                ctx.status, ctx.error = 499, "client_disconnected"
            else:
                raise
            self.metrics.client_disconnects.labels(route).inc()
        finally:
            watch.close()
            watcher.cancel()

    async def _forward(
        self,
        route: str,
        call: UpstreamCall,
        stream: bool,
        send: Send,
        ctx: _Ctx,
        watch: _Watch,
    ) -> None:
        translate = call.translator
        sent_at = time.perf_counter()
        try:
            response = await self._send(call)
        except (httpx.HTTPError, guard.GuardError) as exc:
            ctx.upstream_s = (ctx.upstream_s or 0.0) + time.perf_counter() - sent_at
            mapped = map_upstream_error(exc)
            self.metrics.upstream_errors.labels(route, mapped.code).inc()
            raise mapped from None
        waited = time.perf_counter() - sent_at
        ctx.upstream_s = (ctx.upstream_s or 0.0) + waited
        ctx.upstream_head_s = waited
        response.stream = overhead.TimedStream(response.stream, ctx)
        try:
            status = response.status_code
            ctx.upstream = status
            ok = 200 <= status < 300
            if not ok:
                translate = None  # provider errors pass through verbatim
            if not stream or not ok:
                await self._forward_body(route, response, translate, send, ctx, watch)
            else:
                await self._forward_stream(route, response, translate, send, ctx, watch)
        finally:
            await response.aclose()

    async def _read_capped(
        self, route: str, chunks: AsyncIterator[bytes], limit: int
    ) -> tuple[list[bytes], bool]:
        """Read ``chunks`` until they end (True) or exceed ``limit`` bytes (False)."""
        held: list[bytes] = []
        size = 0
        try:
            async for chunk in chunks:
                held.append(chunk)
                size += len(chunk)
                if size > limit:
                    return held, False
        except httpx.HTTPError as exc:
            raise self._broken(route, exc) from None
        return held, True

    def _broken(self, route: str, exc: BaseException) -> errors.RouterError:
        """An upstream failure while reading an answer that had begun."""
        mapped = map_upstream_error(exc)
        if mapped.code == "upstream_unreachable":
            mapped = errors.upstream_broken()
        self.metrics.upstream_errors.labels(route, mapped.code).inc()
        return mapped

    async def _forward_body(
        self,
        route: str,
        response: upstream.Response,
        translate: ResponseTranslator | None,
        send: Send,
        ctx: _Ctx,
        watch: _Watch,
    ) -> None:
        """A non-streamed answer. Translated answers are held (up to the configured limit)
        and translated whole; others are sent whole when small and streamed through when
        not, so the router's memory stays bounded whatever the upstream sends."""
        headers = _response_headers(response.headers.raw, keep_framing=translate is None)
        if translate is not None:
            limit = self.cfg.max_buffered_response_bytes
            held, complete = await self._read_capped(route, response.aiter_bytes(), limit)
            if not complete:
                self.metrics.upstream_errors.labels(route, "upstream_response_too_large").inc()
                raise errors.upstream_too_large(limit)
            try:
                data = translate.body(b"".join(held))
            except Exception:  # whatever the upstream sent: its fault, never a 500
                raise errors.upstream_bad_response() from None
            watch.finished = True
            await self._respond(send, ctx, response.status_code, data, JSON, headers)
            return
        content_type = response.headers.get("content-type", "application/json").encode()
        headers = [h for h in headers if h[0] != b"content-type"]
        whole = response.take_whole()  # usually: the answer came with its head
        if whole is not None:  # in memory already (reading pauses at 256 KiB)
            watch.finished = True
            await self._respond(send, ctx, response.status_code, whole, content_type, headers)
            return
        chunks = response.aiter_raw()
        held, complete = await self._read_capped(route, chunks, _PASSTHROUGH_WHOLE_BYTES)
        if complete:
            watch.finished = True
            data = b"".join(held)
            await self._respond(send, ctx, response.status_code, data, content_type, headers)
            return
        # Large: streamed through as it comes (chunked framing), never held whole.
        headers.append((b"content-type", content_type))
        await self._start(send, ctx, response.status_code, headers)
        for chunk in held:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        del held
        try:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            # A JSON body cannot carry an error event: end the response unfinished, so the
            # client sees a broken transfer rather than a truncated answer that parses.
            ctx.error = self._broken(route, exc).code
            return
        watch.finished = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _forward_stream(
        self,
        route: str,
        response: upstream.Response,
        translate: ResponseTranslator | None,
        send: Send,
        ctx: _Ctx,
        watch: _Watch,
    ) -> None:
        headers = _response_headers(response.headers.raw, keep_framing=translate is None)
        if translate is not None:
            headers.append((b"content-type", SSE))
            translator = translate.stream()
        else:
            translator = None
        chunks = response.aiter_raw() if translator is None else response.aiter_bytes()
        # Hold the response start until the upstream's first bytes: status line and first
        # chunk leave together, and a provider that fails before sending anything still
        # gets a clean error status instead of a 200 with an error event.
        try:
            first = await anext(chunks, b"")
        except httpx.HTTPError as exc:
            raise self._broken(route, exc) from None
        await self._start(send, ctx, response.status_code, headers)
        tail = b""
        try:
            if translator is None:
                if first:
                    await send({"type": "http.response.body", "body": first, "more_body": True})
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                out = translator.feed(first)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                async for chunk in chunks:
                    out = translator.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                tail = translator.finish()
        except httpx.HTTPError as exc:
            mapped = self._broken(route, exc)
            ctx.error = mapped.code
            if not response.headers.get("content-encoding"):
                tail = mapped.sse_event(ctx.wire)
        except errors.RouterError as exc:  # e.g. one event beyond the buffering limit
            ctx.error = exc.code
            self.metrics.upstream_errors.labels(route, exc.code).inc()
            tail = exc.sse_event(ctx.wire)
        except Exception:  # whatever the upstream sent: its fault, never a 500
            ctx.error = "upstream_bad_response"
            tail = errors.upstream_bad_response().sse_event(ctx.wire)
        watch.finished = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def create_app(cfg: RouterConfig, **kwargs: Any) -> RouterApp:
    """The ASGI app for ``cfg`` (Managed or BYO — never both, never a fallback)."""
    return RouterApp(cfg, **kwargs)


def _closing(send: Send) -> Send:
    """``send`` that adds ``connection: close`` to the response head (the server then
    closes the connection after the response instead of keeping it alive)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"connection", b"close")],
            }
        await send(message)

    return wrapped
