#!/usr/bin/env python3
"""A real HTTP server that speaks three LLM provider wire formats, for tests and benchmarks.

    python tests/stubs/provider.py --port N [--latency-ms X] [--chunks K] [--chunk-delay-ms D]
                                   [--api-key KEY] [--record-bodies] [--log-limit N]

Loopback by default (``--host`` for a pod). A tiny HTTP/1.1 server on asyncio streams
(keep-alive, chunked responses, real connection resets), standard library only (uses
uvloop/orjson when installed), so it starts in ~50 ms and adds little to benchmark baselines.

Wire formats, each with its own auth check and error body shape:

* OpenAI (also OpenRouter/Groq/Ollama/LiteLLM): ``POST /v1/chat/completions`` (JSON and
  SSE ending in ``data: [DONE]``, tools → ``tool_calls``), ``GET /v1/models``,
  ``POST /v1/embeddings`` (float or base64). ``Authorization: Bearer`` required.
* Azure OpenAI: ``POST /openai/deployments/{d}/chat/completions?api-version=…`` and
  ``…/embeddings``; ``api-key`` header required; no api-version → 404 like Azure.
* OpenAI Responses API: ``POST /v1/responses`` (JSON and the SSE events response.created
  … response.completed; function tools → a ``function_call`` item), and for stored
  responses ``GET``/``DELETE /v1/responses/{id}``, ``GET …/{id}/input_items``; on Azure at
  ``/openai/responses[/{id}…]?api-version=…`` (2025-03-01-preview or later, else 400).
* Anthropic: ``POST /v1/messages/count_tokens``, ``POST /v1/messages`` (JSON and the SSE
  event sequence message_start,
  content_block_start/delta/stop, message_delta, message_stop), ``GET /v1/models`` when
  ``x-api-key`` or ``anthropic-version`` is sent; a key (``x-api-key``, or a bearer token
  as newer SDKs send) and ``anthropic-version`` required; unknown
  top-level fields refused like the real API.

Failure injection is chosen by the request's model (the deployment for Azure):
``stub-error-NNN`` (the provider's error body for status NNN; 429 carries Retry-After: 7),
``stub-404`` (model not found), ``stub-hang`` (never answers), ``stub-reset`` (connection
reset before any answer), ``stub-reset-midstream`` and ``stub-hang-midstream`` (two chunks,
then reset / silence), ``stub-reset-after-headers`` (SSE headers, then reset),
``stub-slow`` (50 chunks 100 ms apart), ``stub-huge-N`` (a non-streamed answer whose
content is N MiB, generated as it is written, never held; ``stub-huge-cut-N``: reset
before its end), ``stub-boundless-N`` (a stream
whose first content event carries N MiB without an event boundary, then ends),
``stub-error-event`` (Anthropic: an ``error``
event mid-stream), ``stub-classify-WORD`` (the completion is exactly WORD, to drive an
auto-router classifier).

``GET /_stub/requests`` lists what arrived (path, model, stream, auth scheme and key, body
keys, status, outcome: ok | disconnected | reset | hang); ``DELETE /_stub/requests`` clears
it. ``outcome == "disconnected"`` means the client closed the connection before the answer
was complete — how tests see that a router cancelled its upstream request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:  # optional speed-ups; the stub works with the standard library alone
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}

STUB_MODELS = ["stub-model", "stub-fast", "stub-reasoning", "stub-embed"]
EMBED_DIMS = 8

ANTHROPIC_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
    }
)
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Settings:
    latency_s: float = 0.0
    chunks: int = 3
    chunk_delay_s: float = 0.0
    api_key: str | None = None
    record_bodies: bool = False
    allow_no_key: bool = False  # like a LiteLLM without a master key (byollm dev's "shared")
    log_limit: int = 100_000  # newest entries kept (long benchmarks must not grow memory)
    name: str = "stub"  # reported as system_fingerprint "fp_<name>": which upstream answered
    default_model: str = ""  # like a LiteLLM with a default model: model-less requests use it


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What a handler answers: a status and JSON, an SSE stream, or a failure behaviour."""

    status: int = 200
    json: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    behaviour: str | None = None  # "hang" | "reset"
    content_type: str = "text/event-stream"  # of a streamed reply


class StreamReset(Exception):
    """Raised inside a stream generator to reset the connection mid-stream."""


class StreamHang(Exception):
    """Raised inside a stream generator to stop sending but keep the connection open."""


# --- shared helpers ---------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") == "text":
                    out.append(str(part.get("text", "")))
                elif part.get("type") == "tool_result":
                    out.append("tool result received: " + _text_of(part.get("content")))
        return "".join(out)
    return ""


def _dummy_args(schema: Any) -> dict[str, Any]:
    """Arguments satisfying a JSON schema's required properties, so tool calls look real."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or list(props)[:1]:
        kind = (props.get(name) or {}).get("type", "string")
        out[name] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}.get(
            kind, "stub"
        )
    return out


def _pieces(text: str, n: int) -> list[str]:
    n = max(1, n)
    size = max(1, -(-len(text) // n))
    parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    return parts


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:EMBED_DIMS]]


def _sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def _anthropic_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def _block_event(name: str, index: int, field: str, value: dict[str, Any]) -> bytes:
    """An Anthropic content-block event: ``{"type": name, "index": index, field: value}``."""
    return _anthropic_event(name, {"type": name, "index": index, field: value})


def _openai_failure(
    status: int,
    message: str,
    code: str | None = None,
    kind: str = "invalid_request_error",
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    """An error answer in OpenAI's shape: ``{"error": {message, type, param, code}}``."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, body, headers or [])


def _azure_failure(status: int, message: str, code: str | None = None) -> Reply:
    """An error answer in Azure's shape: ``{"error": {code, message}}`` (the code defaults
    to the status)."""
    return Reply(status, {"error": {"code": code or str(status), "message": message}})


def _openai_bad_json() -> Reply:
    """OpenAI's answer to a body that is not JSON."""
    return _openai_failure(400, "We could not parse the JSON body of your request.")


def _failure_status(model: str) -> int | None:
    if model == "stub-404":
        return 404
    if model.startswith("stub-error-"):
        with contextlib.suppress(ValueError):
            return int(model.rsplit("-", 1)[1])
    return None


def _mib(model: str, prefix: str) -> int | None:
    """N MiB in bytes for a model named ``prefix`` + N."""
    if model.startswith(prefix):
        with contextlib.suppress(ValueError):
            return int(model.removeprefix(prefix)) << 20
    return None


async def _padded(head: bytes, size: int, tail: bytes, cut: bool = False) -> AsyncIterator[bytes]:
    """``head``, ``size`` bytes of ``a`` in 1 MiB pieces, ``tail``: never all in memory.
    ``cut``: reset the connection instead of sending the tail."""
    yield head
    piece = b"a" * (1 << 20)
    while size > 0:
        yield piece[:size]
        size -= len(piece)
    if cut:
        raise StreamReset
    if tail:
        yield tail


def _huge_or_boundless(model: str, stream: bool, wire: str) -> Reply | None:
    """``stub-huge-N`` (non-streamed), ``stub-huge-cut-N`` (the same, reset before its end)
    and ``stub-boundless-N`` (streamed) answers."""
    cut = model.startswith("stub-huge-cut-")
    size = _mib(model, "stub-huge-cut-" if cut else "stub-huge-")
    if size is not None and not stream:
        if wire == "anthropic":
            head = b'{"id":"msg_huge","type":"message","role":"assistant","model":"%s",' % (
                model.encode()
            )
            head += b'"content":[{"type":"text","text":"'
            tail = b'"}],"stop_reason":"end_turn","stop_sequence":null,'
            tail += b'"usage":{"input_tokens":1,"output_tokens":1}}'
        else:
            head = b'{"id":"chatcmpl-huge","object":"chat.completion","created":0,'
            head += b'"model":"%s","choices":[{"index":0,"message":' % model.encode()
            head += b'{"role":"assistant","content":"'
            tail = b'"},"finish_reason":"stop","logprobs":null}],'
            tail += b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
        return Reply(stream=_padded(head, size, tail, cut), content_type="application/json")
    if (size := _mib(model, "stub-boundless-")) is not None and stream:
        if wire == "anthropic":
            start = {"type": "message_start", "message": {"id": "msg_b", "model": model}}
            head = _anthropic_event("message_start", start)
            head += b'event: content_block_delta\ndata: {"type":"content_block_delta",'
            head += b'"index":0,"delta":{"type":"text_delta","text":"'
        else:
            head = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
            head += b'"delta":{"content":"'
        return Reply(stream=_padded(head, size, b""))
    return None


def _mask(key: str) -> str:
    return key[:3] + "*" * 8 + key[-4:] if len(key) > 8 else "***"


# --- the server -------------------------------------------------------------------------


class StubProvider:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.log: deque[dict[str, Any]] = deque(maxlen=settings.log_limit)
        # Stored Responses API objects (id → (response, input items)), newest 1000 kept.
        self.stored: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)

    # - connection handling -

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = await self._read_request(reader)
                if req is None:
                    return
                keep = await self._dispatch(req, reader, writer)
                if not keep or req.headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        url = urlsplit(target)
        return Request(method, url.path, parse_qs(url.query), headers, body)

    async def _dispatch(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if req.path == "/_stub/requests":
            if req.method == "DELETE":
                self.log.clear()
            await self._write_json(writer, 200, {"requests": list(self.log)})
            return True
        if req.path == "/_stub/health":
            await self._write_json(writer, 200, {"status": "ok"})
            return True

        entry: dict[str, Any] = {"id": next(self._ids), "method": req.method, "path": req.path}
        entry["query"] = {k: v[0] for k, v in req.query.items()}
        entry["time"] = time.time()
        self.log.append(entry)
        try:
            reply = await self._route(req, entry)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            # A body the stub's simple handlers cannot read: a 400, as a provider would
            # answer (not a dropped connection, which a router must report as a 502).
            reply = _openai_bad_json()
        entry["status"] = reply.status
        if reply.behaviour is None and reply.stream is None and self.s.latency_s:
            await asyncio.sleep(self.s.latency_s)
        return await self._send(reply, entry, reader, writer)

    async def _send(
        self,
        reply: Reply,
        entry: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if reply.behaviour == "reset":
            entry["outcome"] = "reset"
            writer.transport.abort()
            return False
        if reply.behaviour == "hang":
            entry["outcome"] = "hang"
            with contextlib.suppress(Exception):
                await reader.read()  # until the client gives up
            entry["outcome"] = "disconnected"
            return False
        if reply.stream is None:
            await self._write_json(writer, reply.status, reply.json, reply.headers)
            entry["outcome"] = "ok"
            return True
        return await self._write_stream(reply, entry, reader, writer)

    async def _write_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        obj: Any,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        body = dumps(obj)
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        head.append("content-type: application/json")
        head.append(f"content-length: {len(body)}")
        head.extend(f"{k}: {v}" for k, v in headers or ())
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _write_stream(
        self,
        reply: Reply,
        entry: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        assert reply.stream is not None
        if self.s.latency_s:
            await asyncio.sleep(self.s.latency_s)
        head = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
        head += [f"content-type: {reply.content_type}", "cache-control: no-cache"]
        head += ["transfer-encoding: chunked"]
        head.extend(f"{k}: {v}" for k, v in reply.headers)
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        # The client sends nothing while it reads a response; EOF means it went away.
        gone = asyncio.ensure_future(reader.read(1))
        try:
            async for data in reply.stream:
                if gone.done():
                    entry["outcome"] = "disconnected"
                    return False
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                if self.s.chunk_delay_s:
                    await asyncio.wait({gone}, timeout=self.s.chunk_delay_s)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            entry["outcome"] = "ok"
            return True
        except StreamReset:
            entry["outcome"] = "reset"
            writer.transport.abort()
            return False
        except StreamHang:
            entry["outcome"] = "hang"
            await asyncio.wait({gone})
            entry["outcome"] = "disconnected"
            return False
        except ConnectionError:
            entry["outcome"] = "disconnected"
            return False
        finally:
            gone.cancel()

    async def _paced(self, events: list[bytes], model: str) -> AsyncIterator[bytes]:
        """Yield events; the model name can inject a reset, a hang or slowness."""
        for i, event in enumerate(events):
            if i == 0 and model == "stub-reset-after-headers":
                raise StreamReset
            if i == 2 and model == "stub-reset-midstream":
                raise StreamReset
            if i == 2 and model == "stub-hang-midstream":
                raise StreamHang
            if model == "stub-slow" and i:
                await asyncio.sleep(0.1)
            yield event

    # - routing -

    async def _route(self, req: Request, entry: dict[str, Any]) -> Reply:
        path = req.path
        if path.startswith("/openai/deployments/"):
            return self._azure(req, entry)
        if path == "/openai/responses" or path.startswith("/openai/responses/"):
            return self._azure_responses(req, entry)
        if path == "/v1/messages":
            return self._anthropic_messages(req, entry)
        if path == "/v1/messages/count_tokens":
            return self._anthropic_count_tokens(req, entry)
        if path in ("/v1/responses", "/responses"):
            return self._openai_responses(req, entry, provider="openai")
        if path.startswith(("/v1/responses/", "/responses/")):
            return self._openai_response_item(req, entry, provider="openai")
        if path == "/v1/models" and (
            "x-api-key" in req.headers or "anthropic-version" in req.headers
        ):
            return self._anthropic_models(req, entry)
        if path in ("/v1/chat/completions", "/chat/completions"):
            return self._openai_chat(req, entry, provider="openai")
        if path in ("/v1/embeddings", "/embeddings"):
            return self._openai_embeddings(req, entry, provider="openai")
        if path in ("/v1/models", "/models"):
            entry["provider"] = "openai"
            if (auth := self._openai_auth(req, entry)) is not None:
                return auth
            now = int(time.time())
            data = [
                {"id": m, "object": "model", "created": now, "owned_by": "stub"}
                for m in STUB_MODELS
            ]
            return Reply(json={"object": "list", "data": data})
        return Reply(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})

    def _body(self, req: Request, entry: dict[str, Any]) -> dict[str, Any] | None:
        try:
            body = loads(req.body) if req.body else {}
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        entry["model"] = body.get("model")
        entry["stream"] = body.get("stream") is True
        entry["body_keys"] = sorted(body)
        if self.s.record_bodies:
            entry["body"] = body
        return body

    # - OpenAI -

    def _openai_auth(self, req: Request, entry: dict[str, Any]) -> Reply | None:
        auth = req.headers.get("authorization", "")
        entry["auth"] = "bearer" if auth.lower().startswith("bearer ") else None
        key = auth[7:].strip() if entry["auth"] else ""
        entry["api_key"] = key or None
        entry["headers"] = {
            k: v
            for k, v in req.headers.items()
            if k in ("http-referer", "x-title", "openai-organization", "user-agent")
        }
        if not key and self.s.allow_no_key:
            return None
        if not key:
            msg = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return _openai_failure(401, msg)
        if self.s.api_key is not None and key != self.s.api_key:
            msg = f"Incorrect API key provided: {_mask(key)}. You can find your API key at https://platform.openai.com/account/api-keys."
            return _openai_failure(401, msg, "invalid_api_key")
        return None

    def _openai_error(self, status: int, model: str) -> Reply:
        shapes: dict[int, tuple[str, str | None, str]] = {
            400: (
                "invalid_request_error",
                None,
                "Invalid value for 'messages': stub-injected 400.",
            ),
            401: (
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect API key provided: sk-stu********abcd.",
            ),
            403: (
                "invalid_request_error",
                "unsupported_country_region_territory",
                "Country, region, or territory not supported",
            ),
            404: (
                "invalid_request_error",
                "model_not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
            ),
            422: ("invalid_request_error", None, "Unprocessable Entity: stub-injected 422."),
            429: (
                "requests",
                "rate_limit_exceeded",
                f"Rate limit reached for {model} on requests per min (RPM): "
                "Limit 3, Used 3, Requested 1. Please try again in 7s.",
            ),
        }
        kind, code, msg = shapes.get(
            status,
            (
                "server_error",
                None,
                "The server had an error while processing your request. Sorry about that!",
            ),
        )
        headers = [("x-request-id", "req_stub_" + str(status))]
        if status == 429:
            headers += [
                ("retry-after", "7"),
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "0"),
            ]
        return _openai_failure(status, msg, code, kind, headers)

    def _openai_caller(self, req: Request, entry: dict[str, Any], provider: str) -> Reply | None:
        """Note the provider and check an OpenAI caller's key (the Azure routes check
        theirs before they get here): None, or the answer that refuses the call."""
        entry["provider"] = provider
        return self._openai_auth(req, entry) if provider == "openai" else None

    def _openai_body(
        self, req: Request, entry: dict[str, Any], provider: str
    ) -> dict[str, Any] | Reply:
        """The JSON body of an OpenAI-wire call, or the answer that refuses the call."""
        if (refused := self._openai_caller(req, entry, provider)) is not None:
            return refused
        body = self._body(req, entry)
        return _openai_bad_json() if body is None else body

    def _injected(self, model: str, error: Callable[[int, str], Reply]) -> Reply | None:
        if model == "stub-hang":
            return Reply(behaviour="hang")
        if model == "stub-reset":
            return Reply(behaviour="reset")
        status = _failure_status(model)
        return error(status, model) if status is not None else None

    def _openai_chat(self, req: Request, entry: dict[str, Any], provider: str) -> Reply:
        body = self._openai_body(req, entry, provider)
        if isinstance(body, Reply):
            return body
        model = str(entry.get("deployment") or body.get("model") or self.s.default_model)
        if not model:
            return _openai_failure(400, "you must provide a model parameter")
        injected = self._injected(
            model, self._openai_error if provider == "openai" else self._azure_error
        ) or _huge_or_boundless(model, body.get("stream") is True, "openai")
        if injected is not None:
            return injected
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        tools = body.get("tools") or []
        tool_call: dict[str, Any] | None = None
        if tools and body.get("tool_choice") != "none" and last.get("role") != "tool":
            fn = tools[0].get("function", {})
            choice = body.get("tool_choice")
            if isinstance(choice, dict):
                wanted = choice.get("function", {}).get("name")
                fn = next(
                    (t["function"] for t in tools if t.get("function", {}).get("name") == wanted),
                    fn,
                )
            tool_call = {
                "id": f"call_stub{entry['id']}",
                "type": "function",
                "function": {
                    "name": fn.get("name"),
                    "arguments": json.dumps(_dummy_args(fn.get("parameters"))),
                },
            }
        if model.startswith("stub-classify-"):
            text = model.removeprefix("stub-classify-")  # an auto-router classifier's answer
        elif last.get("role") == "tool":
            text = "tool result received: " + _text_of(last.get("content"))
        else:
            text = "echo: " + _text_of(last.get("content"))
        prompt_tokens = sum(
            _tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _tokens(text),
            "total_tokens": prompt_tokens + _tokens(text),
        }
        cid, created = f"chatcmpl-stub{entry['id']}", int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if tool_call else text,
                "refusal": None,
            }
            if tool_call:
                message["tool_calls"] = [tool_call]
            choice = {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_call else "stop",
                "logprobs": None,
            }
            return Reply(
                json={
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                    "system_fingerprint": f"fp_{self.s.name}",
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": f"fp_{self.s.name}",
                    "choices": [
                        {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                    ],
                }
            )

        events = [chunk({"role": "assistant", "content": ""})]
        if tool_call:
            fn = tool_call["function"]
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": tool_call["id"],
                                "type": "function",
                                "function": {"name": fn["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            events += [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                for p in _pieces(fn["arguments"], self.s.chunks)
            ]
            events.append(chunk({}, "tool_calls"))
        else:
            pieces = _pieces(text, 50 if model == "stub-slow" else self.s.chunks)
            events += [chunk({"content": p}) for p in pieces]
            events.append(chunk({}, "stop"))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            events.append(
                _sse(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        events.append(b"data: [DONE]\n\n")
        return Reply(stream=self._paced(events, model))

    def _openai_embeddings(self, req: Request, entry: dict[str, Any], provider: str) -> Reply:
        body = self._openai_body(req, entry, provider)
        if isinstance(body, Reply):
            return body
        model = str(entry.get("deployment") or body.get("model") or "")
        injected = self._injected(
            model, self._openai_error if provider == "openai" else self._azure_error
        )
        if injected is not None:
            return injected
        raw = body.get("input")
        inputs = (
            [raw]
            if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int))
            else list(raw or [])
        )
        data = []
        for i, item in enumerate(inputs):
            vector = _embedding(item if isinstance(item, str) else json.dumps(item))
            value: Any = vector
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(_tokens(str(x)) for x in inputs)
        return Reply(
            json={
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # - OpenAI Responses API -

    def _openai_responses(self, req: Request, entry: dict[str, Any], provider: str) -> Reply:
        """``POST /v1/responses``: a Response (or its event stream) echoing the last user
        input, or a function_call when tools are given and the last item is not a result."""
        body = self._openai_body(req, entry, provider)
        if isinstance(body, Reply):
            return body
        model = str(body.get("model") or self.s.default_model)
        if not model:
            return self._openai_error(400, model)
        error = self._openai_error if provider == "openai" else self._azure_error
        injected = self._injected(model, error)
        if injected is not None:
            return injected
        raw = body.get("input")
        items: list[dict[str, Any]] = (
            [{"type": "message", "role": "user", "content": raw}]
            if isinstance(raw, str)
            else [i for i in raw or [] if isinstance(i, dict)]
        )
        last = items[-1] if items else {}
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        n = entry["id"]
        rid, created = f"resp_stub{n}", int(time.time())
        output: list[dict[str, Any]]
        if last.get("type") == "function_call_output":
            text = "tool result received: " + str(last.get("output"))
        else:
            text = "echo: " + _text_of(
                [
                    {"type": "text", "text": p.get("text", "")}
                    for p in (last.get("content") if isinstance(last.get("content"), list) else [])
                    if isinstance(p, dict)
                ]
                if not isinstance(last.get("content"), str)
                else last["content"]
            )
        if (
            tools
            and body.get("tool_choice") != "none"
            and last.get("type") != "function_call_output"
        ):
            tool = tools[0]
            args = json.dumps(_dummy_args(tool.get("parameters")))
            output = [
                {
                    "type": "function_call",
                    "id": f"fc_stub{n}",
                    "call_id": f"call_stub{n}",
                    "name": tool.get("name"),
                    "arguments": args,
                    "status": "completed",
                }
            ]
        else:
            output = [
                {
                    "type": "message",
                    "id": f"msg_stub{n}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ]
        in_tokens = sum(_tokens(_text_of(i.get("content"))) for i in items) or 1
        usage = {
            "input_tokens": in_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": _tokens(text),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + _tokens(text),
        }

        def response(status: str, out: list[dict[str, Any]], use: Any) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "response",
                "created_at": created,
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "model": model,
                "output": out,
                "parallel_tool_calls": True,
                "temperature": body.get("temperature"),
                "top_p": body.get("top_p"),
                "tool_choice": body.get("tool_choice") or "auto",
                "tools": body.get("tools") or [],
                "metadata": body.get("metadata") or {},
                "text": {"format": {"type": "text"}},
                "usage": use,
                "store": body.get("store", True) is not False,
            }

        final = response("completed", output, usage)
        if final["store"]:
            if len(self.stored) >= 1000:
                self.stored.pop(next(iter(self.stored)))
            self.stored[rid] = (final, items)
        if not body.get("stream"):
            return Reply(json=final)
        seq = itertools.count()

        def ev(kind: str, payload: dict[str, Any]) -> bytes:
            return _anthropic_event(kind, {"type": kind, "sequence_number": next(seq), **payload})

        events = [
            ev("response.created", {"response": response("in_progress", [], None)}),
            ev("response.in_progress", {"response": response("in_progress", [], None)}),
        ]
        item = output[0]
        if item["type"] == "message":
            added = {**item, "status": "in_progress", "content": []}
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            part = {"type": "output_text", "text": "", "annotations": []}
            events += [
                ev("response.output_item.added", {"output_index": 0, "item": added}),
                ev("response.content_part.added", {**where, "part": part}),
            ]
            pieces = _pieces(text, 50 if model == "stub-slow" else self.s.chunks)
            events += [ev("response.output_text.delta", {**where, "delta": p}) for p in pieces]
            events += [
                ev("response.output_text.done", {**where, "text": text}),
                ev("response.content_part.done", {**where, "part": item["content"][0]}),
            ]
        else:
            added = {**item, "status": "in_progress", "arguments": ""}
            where = {"item_id": item["id"], "output_index": 0}
            events.append(ev("response.output_item.added", {"output_index": 0, "item": added}))
            events += [
                ev("response.function_call_arguments.delta", {**where, "delta": p})
                for p in _pieces(item["arguments"], self.s.chunks)
            ]
            events.append(
                ev(
                    "response.function_call_arguments.done",
                    {**where, "arguments": item["arguments"]},
                )
            )
        events.append(ev("response.output_item.done", {"output_index": 0, "item": item}))
        events.append(ev("response.completed", {"response": final}))
        return Reply(stream=self._paced(events, model))

    def _openai_response_item(self, req: Request, entry: dict[str, Any], provider: str) -> Reply:
        """``GET``/``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``."""
        if (refused := self._openai_caller(req, entry, provider)) is not None:
            return refused
        rest = req.path.split("/responses/", 1)[1]
        rid, _, sub = rest.partition("/")
        entry["response_id"] = rid
        stored = self.stored.get(rid)
        if stored is None:
            message = f"Response with id '{rid}' not found."
            if provider == "azure":
                return _azure_failure(404, message)
            return _openai_failure(404, message)
        response, items = stored
        if sub == "input_items" and req.method == "GET":
            limit = int(req.query.get("limit", ["20"])[0])
            data = [{"id": f"item_{rid}_{i}", **it} for i, it in enumerate(items)][:limit]
            return Reply(
                json={
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": len(items) > limit,
                }
            )
        if not sub and req.method == "GET":
            return Reply(json=response)
        if not sub and req.method == "DELETE":
            del self.stored[rid]
            return Reply(json={"id": rid, "object": "response.deleted", "deleted": True})
        return Reply(
            405, {"error": {"message": "Method not allowed", "type": "invalid_request_error"}}
        )

    def _azure_responses(self, req: Request, entry: dict[str, Any]) -> Reply:
        """Azure's Responses API: ``/openai/responses[/{id}[/input_items]]?api-version=…``
        (2025-03-01-preview or later; the body's model names the deployment)."""
        entry["provider"] = "azure"
        key = req.headers.get("api-key")
        entry["auth"] = "api-key" if key else None
        entry["api_key"] = key
        version = (req.query.get("api-version") or [""])[0]
        entry["api_version"] = version
        if not version:
            return _azure_failure(404, "Resource not found")
        if version < "2025-03-01":
            msg = (
                "Azure OpenAI Responses API is enabled only for api-version "
                f"2025-03-01-preview and later; got {version}"
            )
            return _azure_failure(400, msg, "BadRequest")
        if not key or (self.s.api_key is not None and key != self.s.api_key):
            msg = "Access denied due to invalid subscription key or wrong API endpoint."
            return _azure_failure(401, msg)
        if req.path == "/openai/responses":
            return self._openai_responses(req, entry, provider="azure")
        return self._openai_response_item(req, entry, provider="azure")

    # - Azure -

    def _azure_error(self, status: int, model: str) -> Reply:
        if status == 404:
            body = {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist. "
                    f"Deployment: {model}",
                }
            }
        elif status == 429:
            body = {
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation have "
                    "exceeded call rate limit. Please retry after 7 seconds.",
                }
            }
        else:
            body = {
                "error": {"code": str(status), "message": f"stub-injected Azure error {status}"}
            }
        headers = [("apim-request-id", f"stub-{status}")]
        if status == 429:
            headers.append(("retry-after", "7"))
        return Reply(status, body, headers)

    def _azure(self, req: Request, entry: dict[str, Any]) -> Reply:
        entry["provider"] = "azure"
        parts = req.path.split("/")  # ['', 'openai', 'deployments', d, op...]
        key = req.headers.get("api-key")
        entry["auth"] = "api-key" if key else None
        entry["api_key"] = key
        if len(parts) < 5 or not req.query.get("api-version"):
            return _azure_failure(404, "Resource not found")
        if not key or (self.s.api_key is not None and key != self.s.api_key):
            msg = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource."
            )
            return _azure_failure(401, msg)
        entry["deployment"] = parts[3]
        operation = "/".join(parts[4:])
        if operation == "chat/completions":
            return self._openai_chat(req, entry, provider="azure")
        if operation == "embeddings":
            return self._openai_embeddings(req, entry, provider="azure")
        return _azure_failure(404, "Resource not found")

    # - Anthropic -

    def _anthropic_error(
        self, status: int, message: str, headers: list[tuple[str, str]] | None = None
    ) -> Reply:
        kind = ANTHROPIC_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_stub",
        }
        return Reply(status, body, [("request-id", "req_stub"), *(headers or [])])

    def _anthropic_auth(self, req: Request, entry: dict[str, Any]) -> Reply | None:
        entry["provider"] = "anthropic"
        # x-api-key, or (newer SDKs) the key as a bearer token.
        key = req.headers.get("x-api-key")
        entry["auth"] = "x-api-key" if key else None
        bearer = req.headers.get("authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key, entry["auth"] = bearer[7:].strip(), "bearer"
        entry["api_key"] = key
        entry["anthropic_version"] = req.headers.get("anthropic-version")
        entry["headers"] = {
            k: v for k, v in req.headers.items() if k in ("anthropic-beta", "user-agent")
        }
        if not key or (self.s.api_key is not None and key != self.s.api_key):
            return self._anthropic_error(401, "invalid x-api-key")
        if not entry["anthropic_version"]:
            return self._anthropic_error(400, "anthropic-version: header is required")
        return None

    def _anthropic_validate(self, body: dict[str, Any]) -> str | None:
        for key in body:
            if key not in ANTHROPIC_FIELDS:
                return f"{key}: Extra inputs are not permitted"
        for key in ("model", "messages", "max_tokens"):
            if key not in body:
                return f"{key}: Field required"
        for i, msg in enumerate(body["messages"]):
            if msg.get("role") not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            content = msg.get("content")
            if isinstance(content, list):
                for j, block in enumerate(content):
                    kind = block.get("type")
                    if kind not in (
                        "text",
                        "image",
                        "tool_use",
                        "tool_result",
                        "document",
                        "thinking",
                    ):
                        return f"messages.{i}.content.{j}.type: invalid block type {kind!r}"
                    if kind == "text" and not block.get("text"):
                        return (
                            f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                        )
        return None

    def _anthropic_messages(self, req: Request, entry: dict[str, Any]) -> Reply:
        if (auth := self._anthropic_auth(req, entry)) is not None:
            return auth
        body = self._body(req, entry)
        if body is None:
            return self._anthropic_error(
                400, "There was an issue with the JSON body of your request."
            )
        model = str(body.get("model") or "")
        if model == "stub-hang":
            return Reply(behaviour="hang")
        if model == "stub-reset":
            return Reply(behaviour="reset")
        status = _failure_status(model)
        if status is not None:
            headers = (
                [("retry-after", "7"), ("anthropic-ratelimit-requests-remaining", "0")]
                if status == 429
                else []
            )
            message = f"model: {model}" if status == 404 else f"stub-injected error {status}"
            return self._anthropic_error(status, message, headers)
        problem = self._anthropic_validate(body)
        if problem:
            return self._anthropic_error(400, problem)
        if (big := _huge_or_boundless(model, body.get("stream") is True, "anthropic")) is not None:
            return big
        messages = body["messages"]
        last = messages[-1] if messages else {}
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        last_is_result = isinstance(last.get("content"), list) and any(
            b.get("type") == "tool_result" for b in last["content"]
        )
        use_tool = tools and choice.get("type") != "none" and not last_is_result
        text = _text_of(last.get("content"))
        text = text if last_is_result else "echo: " + text
        if model.startswith("stub-classify-"):
            text = model.removeprefix("stub-classify-")  # an auto-router classifier's answer
        input_tokens = sum(_tokens(_text_of(m.get("content"))) for m in messages) + _tokens(
            _text_of(body.get("system"))
        )
        mid = f"msg_stub{entry['id']}"
        content: list[dict[str, Any]]
        if use_tool:
            tool = tools[0]
            if choice.get("type") == "tool":
                tool = next((t for t in tools if t.get("name") == choice.get("name")), tool)
            call = {
                "type": "tool_use",
                "id": f"toolu_stub{entry['id']}",
                "name": tool.get("name"),
                "input": _dummy_args(tool.get("input_schema")),
            }
            content = [{"type": "text", "text": "Calling a tool."}, call]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": text}]
            stop = "end_turn"
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": _tokens(text),
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        if not body.get("stream"):
            return Reply(
                json={
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
                headers=[("request-id", "req_stub")],
            )
        ev = _anthropic_event
        start: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events = [
            ev("message_start", {"type": "message_start", "message": start}),
            ev("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(content):
            if block["type"] == "text":
                first = {"type": "text", "text": ""}
                events.append(_block_event("content_block_start", index, "content_block", first))
                pieces = _pieces(block["text"], 50 if model == "stub-slow" else self.s.chunks)
                delta = "text_delta", "text"
            else:
                first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                events.append(_block_event("content_block_start", index, "content_block", first))
                pieces = _pieces(json.dumps(block["input"]), self.s.chunks)
                delta = "input_json_delta", "partial_json"
            events += [
                _block_event("content_block_delta", index, "delta", {"type": delta[0], delta[1]: p})
                for p in pieces
            ]
            events.append(ev("content_block_stop", {"type": "content_block_stop", "index": index}))
        if model == "stub-error-event":
            events.insert(
                3,
                ev(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                ),
            )
            del events[4:]
        else:
            events.append(
                ev(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": usage["output_tokens"]},
                    },
                )
            )
            events.append(ev("message_stop", {"type": "message_stop"}))
        return Reply(stream=self._paced(events, model), headers=[("request-id", "req_stub")])

    def _anthropic_count_tokens(self, req: Request, entry: dict[str, Any]) -> Reply:
        """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``."""
        if (auth := self._anthropic_auth(req, entry)) is not None:
            return auth
        body = self._body(req, entry)
        if body is None:
            return self._anthropic_error(400, "There was an issue with the JSON body.")
        status = _failure_status(str(body.get("model") or ""))
        if status is not None:
            return self._anthropic_error(status, f"stub-injected error {status}")
        for key in body:
            if key not in ANTHROPIC_FIELDS - {"max_tokens", "stream", "temperature", "top_p"}:
                return self._anthropic_error(400, f"{key}: Extra inputs are not permitted")
        messages = body.get("messages") or []
        tokens = sum(_tokens(_text_of(m.get("content"))) for m in messages) + _tokens(
            _text_of(body.get("system"))
        )
        return Reply(json={"input_tokens": tokens})

    def _anthropic_models(self, req: Request, entry: dict[str, Any]) -> Reply:
        if (auth := self._anthropic_auth(req, entry)) is not None:
            return auth
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in STUB_MODELS
        ]
        return Reply(
            json={
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"],
                "last_id": data[-1]["id"],
            }
        )


async def serve(port: int, settings: Settings, host: str = "127.0.0.1") -> None:
    stub = StubProvider(settings)
    server = await asyncio.start_server(stub.handle, host, port, limit=1 << 20, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"stub provider listening on {host}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="listen address (a pod's: 0.0.0.0 in its netns)"
    )
    parser.add_argument("--name", default="stub", help="system_fingerprint is fp_<name>")
    parser.add_argument("--default-model", default="", help="model of model-less requests")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    parser.add_argument("--chunks", type=int, default=3, help="content pieces per stream")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between chunks")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument(
        "--record-bodies", action="store_true", help="keep request bodies in the log"
    )
    parser.add_argument("--log-limit", type=int, default=100_000, help="request log size")
    parser.add_argument(
        "--allow-no-key", action="store_true", help="OpenAI routes: accept requests without a key"
    )
    args = parser.parse_args(argv)
    settings = Settings(
        latency_s=args.latency_ms / 1000.0,
        chunks=args.chunks,
        chunk_delay_s=args.chunk_delay_ms / 1000.0,
        api_key=args.api_key,
        record_bodies=args.record_bodies,
        log_limit=args.log_limit,
        allow_no_key=args.allow_no_key,
        name=args.name,
        default_model=args.default_model,
    )
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(args.port, settings, args.host))


if __name__ == "__main__":
    main()
