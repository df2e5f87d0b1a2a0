"""Hypothesis strategies over the wire schemas the router translates between.

* :data:`chat_request` — an OpenAI chat-completions request: every field of the schema,
  each either well typed or any JSON value (integers beyond 64 bits and float range
  included, as a JSON parser admits them).
* :data:`anthropic_message` — an Anthropic Messages answer (non-streamed).
* :data:`anthropic_events` — an Anthropic Messages SSE stream, as bytes.

"Any JSON value" stands in wherever a client or an upstream may send the wrong type, so
one strategy covers both well-formed and mistyped input.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**400, -(10**400)])


def rarely(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``usual``; one time in twelve ``odd`` instead."""
    return st.integers(0, 11).flatmap(lambda i: odd if i == 0 else usual)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    rarely(st.integers(), HUGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
any_json: st.SearchStrategy[Any] = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``strategy``; one time in twelve any JSON value instead (a wrong type)."""
    return rarely(strategy, any_json)


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    return st.fixed_dictionaries(
        {k: maybe(v) for k, v in required.items()},
        optional={k: maybe(v) for k, v in (optional or {}).items()},
    )


text = st.text(max_size=30)
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,20}", fullmatch=True)
numbers = rarely(st.integers(-5, 5) | st.floats(-1, 3), HUGE_INTS)
urls = rarely(
    st.sampled_from(["https://example.com/cat.png", "data:image/png;base64,iVBORw0KGgo="]),
    st.sampled_from(["data:image/png,raw", "data:;base64,", "ftp://x/y", ""]),
)
schema = st.fixed_dictionaries(
    {"type": st.just("object")},
    optional={"properties": st.dictionaries(names, st.just({"type": "string"}), max_size=2)},
)

text_part = obj({"type": st.just("text"), "text": text})
image_part = obj({"type": st.just("image_url"), "image_url": obj({"url": urls})})
other_part = obj({"type": st.sampled_from(["input_audio", "file", "refusal", ""])})
content = maybe(text | st.lists(rarely(text_part | image_part, other_part), max_size=3))
arguments = st.one_of(
    st.dictionaries(names, json_leaf, max_size=2).map(json.dumps),
    st.dictionaries(names, json_leaf, max_size=2),
    text,
)
tool_call = obj(
    {
        "id": text,
        "type": st.just("function"),
        "function": obj({"name": names, "arguments": arguments}),
    }
)
message = rarely(
    st.one_of(
        obj(
            {
                "role": st.sampled_from(["system", "developer"]),
                "content": text | st.lists(text_part, max_size=2),
            }
        ),
        obj({"role": st.just("user"), "content": content}, {"name": names}),
        obj(
            {"role": st.just("assistant")},
            {"content": content | st.none(), "tool_calls": st.lists(maybe(tool_call), max_size=2)},
        ),
        obj({"role": st.just("tool"), "tool_call_id": text, "content": content}),
    ),
    obj({"role": st.sampled_from(["function", "", "bot"]), "content": content}) | any_json,
)
tool = obj(
    {
        "type": st.just("function"),
        "function": obj({"name": names}, {"description": text, "parameters": schema}),
    }
)
tool_choice = st.one_of(
    st.sampled_from(["auto", "none", "required"]),
    obj({"type": st.just("function"), "function": obj({"name": names})}),
)
chat_request = st.fixed_dictionaries(
    {
        "model": maybe(st.sampled_from(["stub-model", "claude-x", "auto"])),
        "messages": maybe(st.lists(message, min_size=1, max_size=4)),
    },
    optional={
        "stream": maybe(st.booleans()),
        "stream_options": obj({}, {"include_usage": st.booleans()}),
        "temperature": maybe(numbers),
        "top_p": maybe(numbers),
        "max_tokens": maybe(st.integers(1, 100) | HUGE_INTS),
        "max_completion_tokens": maybe(st.integers(1, 100)),
        "n": rarely(st.just(1), st.integers(0, 3) | any_json),
        "stop": maybe(text | st.lists(text, max_size=3)),
        "tools": maybe(st.lists(tool, max_size=2)),
        "tool_choice": maybe(tool_choice),
        "parallel_tool_calls": maybe(st.booleans()),
        "user": maybe(text),
        "seed": maybe(st.integers()),
        "response_format": maybe(obj({"type": st.sampled_from(["text", "json_object"])})),
        "logprobs": maybe(st.booleans()),
        "presence_penalty": maybe(numbers),
        "top_k": maybe(st.integers(0, 50)),
        "metadata": maybe(st.dictionaries(names, text, max_size=2)),
        "thinking": maybe(obj({"type": st.just("enabled"), "budget_tokens": st.integers(0, 5000)})),
        "unknown_field": any_json,
    },
)

# --- Anthropic answers ------------------------------------------------------------------

usage = obj(
    {},
    {
        "input_tokens": numbers,
        "output_tokens": numbers,
        "cache_read_input_tokens": numbers | st.none(),
        "cache_creation_input_tokens": numbers | st.none(),
    },
)
content_block = st.one_of(
    obj({"type": st.just("text"), "text": text}),
    obj({"type": st.just("thinking"), "thinking": text, "signature": text}),
    obj({"type": st.just("redacted_thinking"), "data": text}),
    obj({"type": st.just("tool_use"), "id": text, "name": names, "input": any_json}),
    obj({"type": st.just("server_tool_use"), "id": text, "name": names, "input": any_json}),
)
stop_reasons = st.sampled_from(
    ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "new_one"]
)
anthropic_message = obj(
    {
        "id": text,
        "type": st.just("message"),
        "role": st.just("assistant"),
        "model": text,
        "content": st.lists(maybe(content_block), max_size=4),
        "stop_reason": stop_reasons | st.none(),
        "usage": usage,
    },
    {"stop_sequence": text | st.none()},
)
delta = st.one_of(
    obj({"type": st.just("text_delta"), "text": text}),
    obj({"type": st.just("input_json_delta"), "partial_json": text}),
    obj({"type": st.just("thinking_delta"), "thinking": text}),
    obj({"type": st.just("signature_delta"), "signature": text}),
)
index = maybe(st.integers(0, 3))
stream_event = st.one_of(
    obj({"type": st.just("message_start"), "message": anthropic_message}),
    obj({"type": st.just("content_block_start"), "index": index, "content_block": content_block}),
    obj({"type": st.just("content_block_delta"), "index": index, "delta": delta}),
    obj({"type": st.just("content_block_stop"), "index": index}),
    obj(
        {
            "type": st.just("message_delta"),
            "delta": obj({"stop_reason": stop_reasons, "stop_sequence": st.none()}),
            "usage": usage,
        }
    ),
    obj({"type": st.just("message_stop")}),
    obj({"type": st.just("ping")}),
    obj({"type": st.just("error"), "error": obj({"type": text, "message": text})}),
)


def sse(events: list[Any]) -> bytes:
    """Anthropic's framing: ``event: <type>`` then ``data: <json>``, a blank line after."""
    out = []
    for event in events:
        kind = event.get("type") if isinstance(event, dict) else None
        name = kind if isinstance(kind, str) and kind.isidentifier() else "unknown"
        out.append(b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(event).encode()))
    return b"".join(out)


anthropic_events = st.lists(stream_event, max_size=8).map(sse)
