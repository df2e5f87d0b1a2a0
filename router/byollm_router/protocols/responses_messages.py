"""OpenAI Responses API ⇄ Anthropic Messages, for the Anthropic provider.

An agent on the OpenAI Agents SDK or a Codex-style client calls ``POST /v1/responses``;
Anthropic only speaks Messages. The request is translated to a Messages request and the
answer (JSON or SSE) back into a Response with the Responses stream events
(``response.created`` … ``response.completed``). Anthropic keeps no conversation state, so
what needs stored responses (``previous_response_id``, item references, GET/DELETE of a
response) cannot be translated and is refused with a 400 naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from byollm_router import errors
from byollm_router.contract import DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
from byollm_router.errors import bad_field as _bad
from byollm_router.protocols.sse import SSESplitter, event, load_event
from byollm_router.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    function_tool,
    image_block,
    text_blocks,
    tool_result,
    typed_parts,
)
from byollm_router.providers.base import StreamTranslator, json_loads, string_field, text_field

# Fields translated below, and fields that only steer OpenAI's own service (storage,
# caching, truncation, logging) and are dropped: Anthropic stores nothing to retrieve.
_TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "stream",
        "text",
        "user",
    }
)
_DROPPED = frozenset(
    {
        "store",
        "metadata",
        "include",
        "truncation",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "stream_options",
        "background",
        # A hint for OpenAI reasoning models (effort, summaries); Claude models answer
        # without it rather than the request failing (Codex-style clients always send it).
        "reasoning",
    }
)

_STOP_STATUS: dict[str | None, tuple[str, str | None]] = {
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
    "refusal": ("incomplete", "content_filter"),
}


def _content(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return text_blocks(content)
    if not isinstance(content, list):
        raise _bad(where, "content must be a string or a list of parts.")
    blocks: list[dict[str, Any]] = []
    for at, kind, part in typed_parts(content, where):
        if kind in ("input_text", "output_text", "text"):
            blocks.extend(text_blocks(text_field(part, at)))
        elif kind == "input_image" and role == "user":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise _bad(f"{at}.image_url", "Only images given by image_url can be translated.")
            blocks.append(image_block(url, f"{at}.image_url"))
        elif kind == "refusal":
            continue
        else:
            raise _bad(f"{at}.type", f"Content part type {kind!r} cannot be translated.")
    return blocks


def _push(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append blocks as a turn, merged into the previous turn of the same role (Anthropic
    wants alternating turns; Responses input lists items one by one)."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _output(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            text_field(p, f"{where}[{k}]") for k, p in enumerate(value) if isinstance(p, dict)
        )
    raise _bad(where, "A function_call_output's output must be a string.")


def convert_input(
    value: Any, instructions: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Responses ``input`` (+ ``instructions``) → (Anthropic ``system``, ``messages``)."""
    system: list[dict[str, Any]] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("instructions", "instructions must be a string.")
        system.extend(text_blocks(instructions))
    messages: list[dict[str, Any]] = []
    if isinstance(value, str):
        return system, [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad("input", "input must be a string or a non-empty list of items.")
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "Each input item must be an object.")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                system.extend(_content(item.get("content"), f"{where}.content", "system"))
            elif role in ("user", "assistant"):
                _push(messages, role, _content(item.get("content"), f"{where}.content", role))
            else:
                raise _bad(f"{where}.role", f"Role {role!r} cannot be translated.")
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise _bad(where, "A function_call item needs call_id and name.")
            try:
                args = json_loads(item.get("arguments") or "{}")
            except ValueError:
                raise _bad(f"{where}.arguments", "arguments must be JSON.") from None
            if not isinstance(args, dict):
                raise _bad(f"{where}.arguments", "arguments must be a JSON object.")
            block = {"type": "tool_use", "id": call_id, "name": name, "input": args}
            _push(messages, "assistant", [block])
        elif kind == "function_call_output":
            needs = "A function_call_output needs call_id."
            call_id = string_field(item, "call_id", where, needs)
            output = _output(item.get("output"), f"{where}.output")
            _push(messages, "user", [tool_result(call_id, output)])
        elif kind == "reasoning":
            continue  # OpenAI's reasoning of an earlier turn: nothing Anthropic can take back
        else:
            raise _bad(f"{where}.type", f"Input item type {kind!r} cannot be translated.")
    if not messages:
        raise _bad("input", "input needs at least one user or assistant message.")
    return system, messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools", "tools must be a list.")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(
                f"tools[{i}].type",
                f"Tool type {kind!r} cannot be translated; only function tools can.",
            )
        if not isinstance(tool.get("name"), str):
            raise _bad(f"tools[{i}].name", "A function tool needs a name.")
        out.append(function_tool(tool["name"], tool.get("parameters"), tool.get("description")))
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("name"), str)
    ):
        return {"type": "tool", "name": choice["name"]}
    raise _bad("tool_choice", "This tool_choice cannot be translated.")


def to_messages(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses request as an Anthropic Messages request (model already routed)."""
    for key, value in body.items():
        if key in _TRANSLATED or key in _DROPPED or value is None:  # null: not set
            continue
        if key == "previous_response_id":
            raise _bad(
                key,
                "previous_response_id needs stored responses, which provider "
                "anthropic does not keep; send the whole conversation as input.",
            )
        raise _bad(key, f"{key} cannot be translated for provider anthropic.")
    system, messages = convert_input(body.get("input"), body.get("instructions"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if system:
        out["system"] = system
    max_tokens = body.get("max_output_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise _bad("max_output_tokens", "max_output_tokens must be an integer.")
    out["max_tokens"] = max_tokens
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            raise _bad("temperature", "temperature must be a number.")
        out["temperature"] = min(temperature, 1.0)  # OpenAI allows 0..2, Anthropic 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    text = body.get("text")
    if text is not None:
        fmt = text.get("format") if isinstance(text, dict) else None
        if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
            raise _bad("text.format", "Only the text format can be translated.")
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = None
    if body.get("tool_choice") is not None:
        choice = _tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is False and out.get("tools"):
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream") is True:
        out["stream"] = True
    return out


# --- answers: Anthropic → Responses -------------------------------------------------------


def convert_usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (
        (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    )
    output = usage.get("output_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


class _Shell:
    """The request-derived fields every Response repeats (echoed like OpenAI does)."""

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.created = int(time.time())
        self.fields: dict[str, Any] = {
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
            "temperature": request.get("temperature"),
            "top_p": request.get("top_p"),
            "tool_choice": request.get("tool_choice") or "auto",
            "tools": request.get("tools") or [],
            "metadata": request.get("metadata") or {},
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "store": False,
            "previous_response_id": None,
            "reasoning": None,
            "user": request.get("user"),
        }

    def response(
        self,
        rid: str,
        model: Any,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": model,
            "output": output,
            "usage": usage,
            **self.fields,
        }


def _response_id(message_id: Any) -> str:
    return "resp_" + str(message_id or "byollm")


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def _call_item(
    item_id: str, call_id: Any, name: Any, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def from_message(message: Mapping[str, Any], shell: _Shell) -> dict[str, Any]:
    """An Anthropic Message as a Response."""
    mid = str(message.get("id") or "byollm")
    output: list[dict[str, Any]] = []
    for n, block in enumerate(message["content"]):
        kind = block.get("type")
        if kind == "text":
            output.append(_message_item(f"msg_{mid}_{n}", str(block.get("text", "")), "completed"))
        elif kind == "tool_use":
            args = orjson.dumps(block.get("input") or {}).decode()
            output.append(
                _call_item(f"fc_{mid}_{n}", block.get("id"), block.get("name"), args, "completed")
            )
    status, incomplete = _STOP_STATUS.get(message.get("stop_reason"), ("completed", None))
    usage = convert_usage(message.get("usage"))
    return shell.response(
        _response_id(mid), message.get("model"), status, output, usage, incomplete
    )


_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


class MessagesToResponsesStream:
    """Anthropic SSE → the Responses stream: response.created, response.in_progress, per
    block output_item.added / content_part.added / *.delta / *.done / output_item.done,
    then response.completed (or response.incomplete). One event out per delta in."""

    def __init__(self, shell: _Shell, max_event_bytes: int) -> None:
        self._shell = shell
        self._sse = SSESplitter(max_event_bytes)
        self._seq = 0
        self._rid = "resp_byollm"
        self._mid = "byollm"
        self._model: Any = None
        self._usage: dict[str, Any] = {}
        self._stop: str | None = None
        self._output: list[dict[str, Any]] = []
        self._blocks: dict[int, dict[str, Any]] = {}  # anthropic index → state
        self.done = False

    def _emit(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **payload}
        self._seq += 1
        return event(kind, payload)

    def _snapshot(self, status: str, incomplete: str | None = None) -> dict[str, Any]:
        usage = convert_usage(self._usage) if status != "in_progress" else None
        return self._shell.response(
            self._rid, self._model, status, list(self._output), usage, incomplete
        )

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for name, payload in self._sse.feed(data):
            if self.done:
                break
            ev = load_event(payload)
            try:
                out.append(self._event(ev.get("type") or name, ev))
            except _SHAPE_ERRORS:
                raise errors.upstream_bad_response() from None
        return b"".join(out)

    def _event(self, kind: Any, ev: Mapping[str, Any]) -> bytes:
        if kind == "message_start":
            msg = ev.get("message") or {}
            self._mid = str(msg.get("id") or "byollm")
            self._rid = _response_id(self._mid)
            self._model = msg.get("model")
            self._usage.update(msg.get("usage") or {})
            snap = self._snapshot("in_progress")
            return self._emit("response.created", {"response": snap}) + self._emit(
                "response.in_progress", {"response": snap}
            )
        if kind == "content_block_start":
            return self._block_start(int(ev["index"]), ev.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(ev["index"]), ev.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(ev["index"]))
        if kind == "message_delta":
            self._usage.update(ev.get("usage") or {})
            self._stop = (ev.get("delta") or {}).get("stop_reason")
            return b""
        if kind == "message_stop":
            self.done = True
            status, incomplete = _STOP_STATUS.get(self._stop, ("completed", None))
            name = "response.completed" if status == "completed" else "response.incomplete"
            return self._emit(name, {"response": self._snapshot(status, incomplete)})
        if kind == "error":
            self.done = True
            err = ev.get("error") or {}
            return (
                b"data: "
                + errors.error_body(
                    str(err.get("message") or "upstream error"),
                    str(err.get("type") or "api_error"),
                    str(err.get("type") or "api_error"),
                )
                + b"\n\n"
            )
        return b""  # ping, and event types added later

    def _block_start(self, index: int, block: Mapping[str, Any]) -> bytes:
        kind = block.get("type")
        position = len(self._output)
        if kind == "text":
            item_id = f"msg_{self._mid}_{index}"
            state = {"kind": "text", "id": item_id, "pos": position, "text": [], "item": None}
            self._blocks[index] = state
            item = _message_item(item_id, "", "in_progress")
            self._output.append(item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out = self._emit("response.output_item.added", {"output_index": position, "item": item})
            out += self._emit(
                "response.content_part.added",
                {"item_id": item_id, "output_index": position, "content_index": 0, "part": part},
            )
            first = block.get("text")
            if isinstance(first, str) and first:
                out += self._block_delta(index, {"type": "text_delta", "text": first})
            return out
        if kind == "tool_use":
            item_id = f"fc_{self._mid}_{index}"
            state = {
                "kind": "tool",
                "id": item_id,
                "pos": position,
                "args": [],
                "call_id": block.get("id"),
                "name": block.get("name"),
            }
            self._blocks[index] = state
            item = _call_item(item_id, block.get("id"), block.get("name"), "", "in_progress")
            self._output.append(item)
            return self._emit(
                "response.output_item.added", {"output_index": position, "item": item}
            )
        return b""  # thinking blocks: not carried into the Response

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> bytes:
        state = self._blocks.get(index)
        if state is None:
            return b""
        if state["kind"] == "text" and delta.get("type") == "text_delta":
            text = str(delta.get("text", ""))
            state["text"].append(text)
            payload = {
                "item_id": state["id"],
                "output_index": state["pos"],
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            }
            return self._emit("response.output_text.delta", payload)
        if state["kind"] == "tool" and delta.get("type") == "input_json_delta":
            part = str(delta.get("partial_json", ""))
            state["args"].append(part)
            payload = {"item_id": state["id"], "output_index": state["pos"], "delta": part}
            return self._emit("response.function_call_arguments.delta", payload)
        return b""

    def _block_stop(self, index: int) -> bytes:
        state = self._blocks.pop(index, None)
        if state is None:
            return b""
        position, item_id = state["pos"], state["id"]
        if state["kind"] == "text":
            text = "".join(state["text"])
            item = _message_item(item_id, text, "completed")
            self._output[position] = item
            part = item["content"][0]
            where = {"item_id": item_id, "output_index": position, "content_index": 0}
            out = self._emit("response.output_text.done", {**where, "text": text, "logprobs": []})
            out += self._emit("response.content_part.done", {**where, "part": part})
        else:
            args = "".join(state["args"]) or "{}"
            item = _call_item(item_id, state["call_id"], state["name"], args, "completed")
            self._output[position] = item
            out = self._emit(
                "response.function_call_arguments.done",
                {"item_id": item_id, "output_index": position, "arguments": args},
            )
        return out + self._emit(
            "response.output_item.done", {"output_index": position, "item": item}
        )

    def finish(self) -> bytes:
        if self.done:
            return b""
        self.done = True
        return errors.upstream_broken().sse_event()


class MessagesToResponses:
    """The :class:`ResponseTranslator` for ``/v1/responses`` on the Anthropic provider."""

    def __init__(
        self, request: Mapping[str, Any], max_event_bytes: int = DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
    ) -> None:
        self._shell = _Shell(request)
        self._max_event = max_event_bytes

    def body(self, data: bytes) -> bytes:
        try:
            message = orjson.loads(data)
            return orjson.dumps(from_message(message, self._shell))
        except _SHAPE_ERRORS:
            raise errors.upstream_bad_response() from None

    def stream(self) -> StreamTranslator:
        return MessagesToResponsesStream(self._shell, self._max_event)
