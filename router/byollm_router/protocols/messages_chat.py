"""Anthropic Messages API ⇄ OpenAI chat completions, for OpenAI-wire providers.

A Claude-native agent (anthropic SDK, Claude Code) calls ``POST /v1/messages``; an
OpenAI-compatible, Azure or Managed upstream only speaks chat completions. The request is
translated to a chat request, the answer (JSON or SSE) back into a Message with
Anthropic's exact stream event sequence. Pure functions; errors name the field (Anthropic's
dotted paths, e.g. ``messages.2.content.0.source``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from byollm_router import errors
from byollm_router.contract import DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
from byollm_router.errors import bad_field as _bad
from byollm_router.protocols.sse import SSESplitter, event, load_event
from byollm_router.providers.base import StreamTranslator, json_loads, text_field

# Messages fields with a chat-completions equivalent (translated below) ...
_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "metadata",
    }
)
# ... and those that only tune Anthropic's own service and are dropped: an OpenAI-wire
# model has no extended-thinking budget, service tier or prompt-cache control to set.
_DROPPED = frozenset({"thinking", "service_tier", "top_k", "context_management"})

FINISH_TO_STOP: dict[str | None, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def image_url(block: Mapping[str, Any], where: str) -> str:
    """An Anthropic image block's source as an OpenAI ``image_url`` URL."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad(f"{where}.source", "An image block needs a source.")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise _bad(f"{where}.source", "A base64 image needs media_type and data strings.")
        return f"data:{media};base64,{data}"
    if kind == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise _bad(f"{where}.source.type", f"Image source type {kind!r} cannot be translated.")


def _texts(blocks: list[Any], where: str, refusal: str) -> list[str]:
    """The texts of a list that may hold text blocks only (``where``: the list's dotted
    path; ``refusal``: the 400's message for any other block)."""
    texts = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"{where}.{i}", refusal)
        texts.append(text_field(block, f"{where}.{i}", "block"))
    return texts


def _system(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        refusal = "Only text blocks can be translated in system."
        return "\n\n".join(_texts(system, "system", refusal))
    raise _bad("system", "system must be a string or a list of text blocks.")


def _tool_result_content(block: Mapping[str, Any], where: str) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        refusal = "Only text can be translated in a tool_result."
        text = "".join(_texts(content, f"{where}.content", refusal))
    else:
        raise _bad(f"{where}.content", "tool_result content must be a string or a list.")
    if block.get("is_error") is True:
        text = "Error: " + text
    return text


def _user(content: Any, where: str, out: list[dict[str, Any]]) -> None:
    """A user turn: its tool results become ``tool`` messages (first, as chat requires
    them right after the assistant's calls), the rest one user message."""
    if isinstance(content, str):
        out.append({"role": "user", "content": content})
        return
    if not isinstance(content, list):
        raise _bad(f"{where}.content", "content must be a string or a list of blocks.")
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": text_field(block, at, "block")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": image_url(block, at)}})
        elif kind == "tool_result":
            tool_id = block.get("tool_use_id")
            if not isinstance(tool_id, str):
                raise _bad(f"{at}.tool_use_id", "A tool_result needs tool_use_id.")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": tool_id,
                    "content": _tool_result_content(block, at),
                }
            )
        else:
            raise _bad(f"{at}.type", f"Content block type {kind!r} cannot be translated.")
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        text = "".join(p["text"] for p in parts) if only_text else None
        out.append({"role": "user", "content": text if text is not None else parts})


def _assistant(content: Any, where: str, out: list[dict[str, Any]]) -> None:
    if isinstance(content, str):
        out.append({"role": "assistant", "content": content})
        return
    if not isinstance(content, list):
        raise _bad(f"{where}.content", "content must be a string or a list of blocks.")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(text_field(block, at, "block"))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _bad(at, "A tool_use block needs an id and a name.")
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # earlier turns' reasoning: an OpenAI-wire model cannot take it back
        else:
            raise _bad(f"{at}.type", f"Content block type {kind!r} cannot be translated.")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    if texts or calls:
        out.append(msg)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools", "tools must be a list.")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _bad(f"tools.{i}", "Each tool must be an object.")
        kind = tool.get("type")
        if kind not in (None, "custom") or "input_schema" not in tool:
            raise _bad(
                f"tools.{i}.type",
                f"Tool type {kind!r} (a server tool) cannot be translated; "
                "only custom tools with an input_schema can.",
            )
        if not isinstance(tool.get("name"), str):
            raise _bad(f"tools.{i}.name", "A tool needs a name.")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, body: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise _bad("tool_choice", "tool_choice must be an object.")
    kind = choice.get("type")
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = "required"
    elif kind == "none":
        body["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _bad("tool_choice.type", f"tool_choice type {kind!r} cannot be translated.")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        body["parallel_tool_calls"] = False


def to_chat(body: Mapping[str, Any], max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """A Messages request as a chat-completions request (model already routed).

    ``max_tokens_field``: OpenAI and Azure take ``max_completion_tokens`` (their reasoning
    models refuse ``max_tokens``); other OpenAI-compatible servers know ``max_tokens``.
    """
    for key, value in body.items():
        if key not in _TRANSLATED and key not in _DROPPED and value is not None:
            raise _bad(key, f"{key} cannot be translated to this provider's chat completions.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "messages must be a non-empty list.")
    out: list[dict[str, Any]] = []
    system = _system(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _bad(where, "Each message must be an object.")
        role = msg.get("role")
        if role == "user":
            _user(msg.get("content"), where, out)
        elif role == "assistant":
            _assistant(msg.get("content"), where, out)
        else:
            raise _bad(f"{where}.role", "role must be 'user' or 'assistant'.")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": out}
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise _bad("max_tokens", "max_tokens must be an integer.")
        chat[max_tokens_field] = max_tokens
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            chat[key] = body[key]
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences", "stop_sequences must be a list of strings.")
        chat["stop"] = stops
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if body.get("stream") is True:
        chat["stream"] = True
        # Anthropic reports usage on every stream; the chat upstream only when asked.
        chat["stream_options"] = {"include_usage": True}
    return chat


# --- answers: chat → Messages -------------------------------------------------------------


def convert_usage(usage: Any) -> dict[str, Any]:
    """Chat usage as Anthropic's (counts copied, never recorded by the router)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    prompt = usage.get("prompt_tokens") or 0
    out: dict[str, Any] = {
        "input_tokens": prompt - (cached or 0),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached or 0,
    }
    return out


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = json_loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def from_chat(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A chat completion as a Message."""
    choice = answer["choices"][0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": _arguments(fn.get("arguments")),
            }
        )
    return {
        "id": str(answer.get("id") or "msg_byollm"),
        "type": "message",
        "role": "assistant",
        "model": answer.get("model"),
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": convert_usage(answer.get("usage")),
    }


_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


class ChatToMessagesStream:
    """OpenAI chat SSE chunks → Anthropic's event sequence, one event per delta:
    message_start, (content_block_start, content_block_delta…, content_block_stop)…,
    message_delta (stop reason, usage), message_stop."""

    def __init__(self, max_event_bytes: int) -> None:
        self._sse = SSESplitter(max_event_bytes)
        self._started = False
        self._block: int | None = None  # index of the open content block
        self._kind: str | None = None  # "text" | "tool"
        self._next = 0
        self._tools: dict[int, int] = {}  # chat tool_calls index → block index
        self._stop: str | None = None
        self._usage: dict[str, Any] = {}
        self.done = False

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": str(chunk.get("id") or "msg_byollm"),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        index, self._block, self._kind = self._block, None, None
        return event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _open(self, block: dict[str, Any], kind: str) -> bytes:
        out = self._close()
        self._block, self._kind = self._next, kind
        self._next += 1
        start = {"type": "content_block_start", "index": self._block, "content_block": block}
        return out + event("content_block_start", start)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for _, payload in self._sse.feed(data):
            if self.done:
                break
            if payload.strip() == b"[DONE]":
                out.append(self._end())
                continue
            chunk = load_event(payload)
            try:
                out.append(self._chunk(chunk))
            except _SHAPE_ERRORS:
                raise errors.upstream_bad_response() from None
        return b"".join(out)

    def _chunk(self, chunk: Mapping[str, Any]) -> bytes:
        if "error" in chunk and not chunk.get("choices"):  # an error event from upstream
            self.done = True
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            message = str(err.get("message") or "upstream error")
            return b"event: error\ndata: " + errors.anthropic_error_body(500, message) + b"\n\n"
        out = b"" if self._started else self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._kind != "text":
                    out += self._open({"type": "text", "text": ""}, "text")
                assert self._block is not None
                out += self._delta(self._block, {"type": "text_delta", "text": text})
            for call in delta.get("tool_calls") or ():
                position = int(call.get("index", 0))
                fn = call.get("function") or {}
                if position not in self._tools:
                    block: dict[str, Any] = {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{position}",
                        "name": fn.get("name") or "",
                        "input": {},
                    }
                    out += self._open(block, "tool")
                    assert self._block is not None
                    self._tools[position] = self._block
                args = fn.get("arguments")
                if isinstance(args, str) and args:
                    index = self._tools[position]
                    out += self._delta(index, {"type": "input_json_delta", "partial_json": args})
            if choice.get("finish_reason"):
                self._stop = FINISH_TO_STOP.get(choice["finish_reason"], "end_turn")
        return out

    def _end(self) -> bytes:
        self.done = True
        out = (b"" if self._started else self._start({})) + self._close()
        usage = convert_usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
            "usage": usage,
        }
        return out + event("message_delta", delta) + event("message_stop", {"type": "message_stop"})

    def finish(self) -> bytes:
        """Upstream ended: without ``[DONE]`` but after a finish reason the answer is
        whole (some servers omit it); otherwise the stream was cut — an error event."""
        if self.done:
            return b""
        if self._stop is not None:
            return self._end()
        self.done = True
        return errors.upstream_broken().sse_event("anthropic")


class ChatToMessages:
    """The :class:`ResponseTranslator` for a translated ``/v1/messages`` call."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_BUFFERED_RESPONSE_BYTES) -> None:
        self._max_event = max_event_bytes

    def body(self, data: bytes) -> bytes:
        try:
            answer = orjson.loads(data)
            return orjson.dumps(from_chat(answer))
        except _SHAPE_ERRORS:
            raise errors.upstream_bad_response() from None

    def stream(self) -> StreamTranslator:
        return ChatToMessagesStream(self._max_event)
