"""Anthropic native: OpenAI chat completions ⇄ Anthropic Messages, streaming included.

The tenant's agent speaks OpenAI; Anthropic's API does not, so requests and answers are translated.
The translation functions are pure and unit-tested; only 2xx answers are translated —
Anthropic's error bodies pass through verbatim like every provider's.

Anthropic rejects unknown top-level fields, so OpenAI-only fields (``n`` = 1, penalties,
``seed``, ``logprobs``, ``response_format``, ``stream_options`` …) are dropped, and only
Anthropic-native extras (``top_k``, ``thinking``, ``metadata`` …) are passed through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson

from byollm_router import contract, errors
from byollm_router.contract import DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
from byollm_router.errors import bad_field as _bad
from byollm_router.providers.base import (
    LocalAnswer,
    Provider,
    StreamTranslator,
    UpstreamCall,
    base_headers,
    dump_json,
    json_loads,
    string_field,
    text_field,
    with_forwarded,
)

DEFAULT_MAX_TOKENS = 4096

# Anthropic-native request fields passed through untouched when a caller sends them.
NATIVE_FIELDS = frozenset(
    {"top_k", "thinking", "metadata", "service_tier", "container", "mcp_servers"}
)

STOP_REASONS: dict[str | None, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# --- request: OpenAI → Anthropic ----------------------------------------------------------


def _text_of(content: Any, param: str) -> str:
    """Text of a system/developer/tool message (a string or a list of text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad(param, "Only text parts are supported here by provider anthropic.")
            texts.append(text_field(part, param, missing=""))
        return "".join(texts)
    raise _bad(param, "Message content must be a string or a list of parts.")


def typed_parts(content: list[Any], param: str) -> Iterator[tuple[str, Any, Any]]:
    """Each part of a client's content list as (its path ``param[j]``, its ``type`` or
    None when it is not an object, the part)."""
    for j, part in enumerate(content):
        yield f"{param}[{j}]", part.get("type") if isinstance(part, dict) else None, part


def text_blocks(text: str) -> list[dict[str, Any]]:
    """A text as Anthropic content blocks: one text block, or none for an empty text."""
    return [{"type": "text", "text": text}] if text else []


def image_block(url: str, param: str) -> dict[str, Any]:
    """An OpenAI ``image_url`` (http(s) or base64 data URL) as an Anthropic image block."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise _bad(param, "Image data URLs must be base64 (data:<type>;base64,<data>).")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _bad(param, "Image URL must be http(s) or a base64 data URL.")


def _user_blocks(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(param, "Message content must be a string or a list of parts.")
    blocks: list[dict[str, Any]] = []
    for where, kind, part in typed_parts(content, param):
        if kind == "text":
            blocks.extend(text_blocks(text_field(part, where, missing="")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise _bad(where, "image_url.url must be a string.")
            blocks.append(image_block(url, where))
        else:
            raise _bad(where, f"Content part type {kind!r} is not supported by provider anthropic.")
    return blocks


def _assistant_blocks(msg: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = msg.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text":
                blocks.extend(text_blocks(text_field(part, f"{param}.content[{j}]", missing="")))
    elif isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    elif content is not None and not isinstance(content, list):
        raise _bad(f"{param}.content", "Message content must be a string or a list of parts.")
    calls = msg.get("tool_calls")
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        raise _bad(f"{param}.tool_calls", "tool_calls must be a list.")
    for k, call in enumerate(calls):
        where = f"{param}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
            raise _bad(where, "A tool call needs an id and a function.")
        if not isinstance(fn.get("name"), str):
            raise _bad(f"{where}.function.name", "A tool call's function needs a name.")
        raw_args = fn.get("arguments") or "{}"
        try:
            args = json_loads(raw_args) if isinstance(raw_args, str) else raw_args
        except ValueError:
            raise _bad(f"{where}.function.arguments", "Tool arguments must be JSON.") from None
        if not isinstance(args, dict):
            raise _bad(f"{where}.function.arguments", "Tool arguments must be an object.")
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": args})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, content: Any) -> None:
    """Append a turn, merging with the previous one when the role repeats (Anthropic
    expects alternating turns; OpenAI allows e.g. several tool results in a row)."""
    if messages and messages[-1]["role"] == role:
        prev = messages[-1]["content"]
        prev_blocks = [{"type": "text", "text": prev}] if isinstance(prev, str) else prev
        new_blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        messages[-1]["content"] = [b for b in prev_blocks + new_blocks if b.get("text", 1) != ""]
    else:
        messages.append({"role": role, "content": content})


def tool_result(tool_use_id: str, content: str) -> dict[str, Any]:
    """An Anthropic ``tool_result`` block: the answer to the ``tool_use`` of that id."""
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}


def convert_messages(
    openai_messages: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI ``messages`` → (Anthropic ``system`` blocks, Anthropic ``messages``)."""
    if not isinstance(openai_messages, list) or not openai_messages:
        raise _bad("messages", "messages must be a non-empty list.")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(openai_messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(param, "Each message must be an object.")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(text_blocks(_text_of(msg.get("content"), f"{param}.content")))
        elif role == "user":
            _append(out, "user", _user_blocks(msg.get("content"), f"{param}.content"))
        elif role == "assistant":
            blocks = _assistant_blocks(msg, param)
            if blocks:
                _append(out, "assistant", blocks)
        elif role == "tool":
            needs = "A tool message needs tool_call_id."
            tool_id = string_field(msg, "tool_call_id", param, needs)
            content = _text_of(msg.get("content"), f"{param}.content")
            _append(out, "user", [tool_result(tool_id, content)])
        else:
            raise _bad(f"{param}.role", f"Role {role!r} is not supported by provider anthropic.")
    return system, out


def function_tool(name: str, parameters: Any, description: Any) -> dict[str, Any]:
    """A function tool as Anthropic takes it: no parameters is an object schema without
    properties, and a description is sent only when it is a non-empty string."""
    converted: dict[str, Any] = {
        "name": name,
        "input_schema": parameters or {"type": "object", "properties": {}},
    }
    if isinstance(description, str) and description:
        converted["description"] = description
    return converted


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools", "tools must be a list.")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise _bad(f"tools[{i}]", "Only function tools are supported by provider anthropic.")
        if not isinstance(fn.get("name"), str):
            raise _bad(f"tools[{i}].function.name", "A function tool needs a name.")
        if not isinstance(fn.get("parameters") or {}, dict):
            raise _bad(f"tools[{i}].function.parameters", "parameters must be a JSON schema.")
        description = fn.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"tools[{i}].function.description", "description must be a string.")
        out.append(function_tool(fn["name"], fn.get("parameters"), description))
    return out


def convert_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` (+ ``parallel_tool_calls``) → Anthropic ``tool_choice``."""
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif (
        isinstance(choice, dict)
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _bad("tool_choice", "Unsupported tool_choice for provider anthropic.")
    if parallel is False:
        result = result or {"type": "auto"}
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a boolean). Integers may exceed float range: callers
    compare them, never convert them to float."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def to_anthropic(body: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat-completions request as an Anthropic Messages request."""
    n = body.get("n")
    if n not in (None, 1):
        raise _bad("n", "n > 1 is not supported by provider anthropic.")
    system, messages = convert_messages(body.get("messages"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if system:
        out["system"] = system
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    elif not _is_number(max_tokens) or max_tokens != int(max_tokens):
        raise _bad("max_tokens", "max_tokens must be an integer.")
    out["max_tokens"] = int(max_tokens)
    temperature = body.get("temperature")
    if temperature is not None:
        if not _is_number(temperature):
            raise _bad("temperature", "temperature must be a number.")
        out["temperature"] = min(temperature, 1.0)  # OpenAI allows 0..2, Anthropic 0..1
    if body.get("top_p") is not None:
        if not _is_number(body["top_p"]):
            raise _bad("top_p", "top_p must be a number.")
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    if body.get("stream") is True:
        out["stream"] = True
    tools = body.get("tools")
    if tools:
        out["tools"] = convert_tools(tools)
    choice = convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    for key in NATIVE_FIELDS:
        if key in body:
            out[key] = body[key]
    return out


# --- response: Anthropic → OpenAI -----------------------------------------------------------


def convert_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + created
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def from_anthropic(msg: Mapping[str, Any], created: int) -> dict[str, Any]:
    """An Anthropic ``message`` as an OpenAI ``chat.completion``."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return {
        "id": msg.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": msg.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": STOP_REASONS.get(msg.get("stop_reason"), "stop"),
                "logprobs": None,
            }
        ],
        "usage": convert_usage(msg.get("usage") or {}),
    }


class AnthropicStream:
    """Anthropic SSE events → OpenAI ``chat.completion.chunk`` SSE, incrementally.

    Feeds arbitrary byte slices (events may straddle reads); emits one OpenAI chunk per
    content delta, so time-to-first-token is preserved. Parsing is linear in the bytes fed
    (each byte is scanned for an event boundary once), and one event may be at most
    ``max_event_bytes``: beyond it :func:`errors.upstream_too_large` is raised.
    """

    def __init__(
        self,
        include_usage: bool,
        created: int,
        max_event_bytes: int = DEFAULT_MAX_BUFFERED_RESPONSE_BYTES,
    ) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a boundary
        self._cr = False  # the last read ended in "\r" (perhaps half of "\r\n")
        self._max_event = max_event_bytes
        self._include_usage = include_usage
        self._created = created
        self._id = ""
        self._model = ""
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # anthropic block index → openai tool_calls index
        self.done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def feed(self, data: bytes) -> bytes:
        """OpenAI SSE bytes for the events completed by ``data``.

        Raises :class:`errors.RouterError` (502) for an event the router cannot read: not
        JSON, not shaped like Anthropic's, or larger than the limit.
        """
        if self._cr:  # "\r" already became "\n"; a "\n" right after it is the same break
            self._cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:  # SSE lines end in \r\n, \n or \r
            self._cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        start = 0
        pos = max(self._scanned - 1, 0)  # a boundary may straddle the previous read
        while (end := buf.find(b"\n\n", pos)) >= 0:
            out.append(self._raw_event(bytes(buf[start:end])))
            start = pos = end + 2
        if start:
            del buf[:start]  # O(1) in CPython: a bytearray drops its head in place
        self._scanned = len(buf)
        if len(buf) > self._max_event:
            raise errors.upstream_too_large(self._max_event)
        return b"".join(out)

    def _raw_event(self, raw_event: bytes) -> bytes:
        payload = b"\n".join(
            line[5:].lstrip() for line in raw_event.split(b"\n") if line.startswith(b"data:")
        )
        if not payload:
            return b""
        try:
            event = orjson.loads(payload)
            if not isinstance(event, dict):
                raise TypeError("event is not an object")
            return self._event(event)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
            raise errors.upstream_bad_response() from None

    def _event(self, ev: Mapping[str, Any]) -> bytes:
        kind = ev.get("type")
        if kind == "message_start":
            msg = ev.get("message") or {}
            self._id = str(msg.get("id", ""))
            self._model = str(msg.get("model", ""))
            self._usage.update(msg.get("usage") or {})
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                idx = self._tools[int(ev.get("index", 0))] = len(self._tools)
                call = {
                    "index": idx,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return self._chunk({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return self._chunk({"content": block["text"]})
            return b""
        if kind == "content_block_delta":
            delta = ev.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return self._chunk({"content": delta.get("text", "")})
            if dtype == "input_json_delta":
                idx = self._tools.get(int(ev.get("index", 0)), 0)
                part = {"index": idx, "function": {"arguments": delta.get("partial_json", "")}}
                return self._chunk({"tool_calls": [part]})
            if dtype == "thinking_delta":
                return self._chunk({"reasoning_content": delta.get("thinking", "")})
            return b""
        if kind == "message_delta":
            self._usage.update((ev.get("usage") or {}).items())
            reason = (ev.get("delta") or {}).get("stop_reason")
            return self._chunk({}, STOP_REASONS.get(reason, "stop"))
        if kind == "message_stop":
            self.done = True
            tail = b""
            if self._include_usage:
                chunk = {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self._model,
                    "choices": [],
                    "usage": convert_usage(self._usage),
                }
                tail = b"data: " + orjson.dumps(chunk) + b"\n\n"
            return tail + b"data: [DONE]\n\n"
        if kind == "error":
            self.done = True
            err = ev.get("error") or {}
            body = {
                "error": {
                    "message": err.get("message", "upstream error"),
                    "type": err.get("type", "api_error"),
                    "param": None,
                    "code": None,
                }
            }
            return b"data: " + orjson.dumps(body) + b"\n\n"
        return b""  # ping and future event types

    def finish(self) -> bytes:
        """Called when upstream ends; a stream cut before ``message_stop`` is an error."""
        if self.done:
            return b""
        self.done = True
        return errors.upstream_broken().sse_event()


_UPSTREAM_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, OverflowError)


class ChatTranslator:
    def __init__(
        self, include_usage: bool, max_event_bytes: int = DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
    ) -> None:
        self._include_usage = include_usage
        self._created = int(time.time())
        self._max_event = max_event_bytes

    def body(self, data: bytes) -> bytes:
        """The OpenAI answer for Anthropic's; a 502 error when it is not shaped like one."""
        try:
            message = orjson.loads(data)
            if not isinstance(message, dict):
                raise TypeError("answer is not an object")
            return orjson.dumps(from_anthropic(message, self._created))
        except _UPSTREAM_SHAPE_ERRORS:
            raise errors.upstream_bad_response() from None

    def stream(self) -> StreamTranslator:
        return AnthropicStream(self._include_usage, self._created, self._max_event)


def _epoch(value: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


class ModelsTranslator:
    """Anthropic's model list → OpenAI's ``{"object": "list", "data": [...]}``."""

    def body(self, data: bytes) -> bytes:
        try:
            listing = orjson.loads(data)
            models = [
                {
                    "id": m.get("id"),
                    "object": "model",
                    "created": _epoch(m.get("created_at")),
                    "owned_by": "anthropic",
                }
                for m in listing.get("data") or ()
            ]
            return orjson.dumps({"object": "list", "data": models})
        except _UPSTREAM_SHAPE_ERRORS:
            raise errors.upstream_bad_response() from None

    def stream(self) -> StreamTranslator:  # pragma: no cover - models is never streamed
        raise NotImplementedError


class Anthropic(Provider):
    name = "anthropic"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        max_event_bytes: int = DEFAULT_MAX_BUFFERED_RESPONSE_BYTES,
    ) -> None:
        self._max_event = max_event_bytes
        base = base_url.rstrip("/")
        self._messages_url = httpx.URL(base + "/messages")
        self.count_tokens_url = httpx.URL(base + "/messages/count_tokens")
        self._models_url = httpx.URL(base + "/models?limit=1000")
        self._headers = base_headers(
            ("x-api-key", api_key), ("anthropic-version", contract.ANTHROPIC_VERSION), decoded=True
        )

    @property
    def messages_url(self) -> httpx.URL:
        return self._messages_url

    def request_headers(self, client_headers: Mapping[str, str]) -> httpx.Headers:
        return with_forwarded(self._headers, client_headers)

    def chat(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        translated = dump_json(to_anthropic(body))
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return UpstreamCall(
            "POST",
            self._messages_url,
            with_forwarded(self._headers, client_headers),
            translated,
            ChatTranslator(include_usage, self._max_event),
        )

    def embeddings(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        raise errors.unsupported("Embeddings", "anthropic")

    def models(self, client_headers: Mapping[str, str]) -> UpstreamCall | LocalAnswer:
        return UpstreamCall(
            "GET",
            self._models_url,
            with_forwarded(self._headers, client_headers),
            None,
            ModelsTranslator(),
        )
