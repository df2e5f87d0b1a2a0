# ruff: noqa: E501  (wire samples read best one event per line)
"""The pure translations behind /v1/messages (Messages ⇄ chat) and /v1/responses on
Anthropic (Responses ⇄ Messages): field mapping, refusals that name the field, stream
event sequences however the upstream bytes are split, and no exception but the router's
own 4xx/502 for any input (the app would answer 500 otherwise)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm_router.errors import RouterError
from byollm_router.protocols.messages_chat import ChatToMessages, from_chat, to_chat
from byollm_router.protocols.responses_messages import (
    MessagesToResponses,
    from_message,
    to_messages,
)
from byollm_router.protocols.responses_messages import _Shell as Shell
from byollm_router.providers.base import dump_json

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["model", "messages", "system", "max_tokens", "tools", "tool_choice", "stream", "input",
     "instructions", "max_output_tokens", "text", "temperature", "stop_sequences", "metadata"]
)  # fmt: skip


def _sse(name: str, obj: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()


# --- Messages → chat -----------------------------------------------------------------------


def test_messages_request_maps_every_translated_field() -> None:
    chat = to_chat(
        {
            "model": "m",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "metadata": {"user_id": "u1"},
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},  # dropped
            "stream": True,
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "…", "signature": "s"},
                        {"type": "text", "text": "calling"},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "ok",
                            "is_error": True,
                        },
                        {"type": "text", "text": "and?"},
                    ],
                },
            ],
        }
    )
    assert chat == {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "system", "content": "A\n\nB"},
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "Error: ok"},
            {"role": "user", "content": "and?"},
        ],
        "stop": ["END"],
        "temperature": 0.5,
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"container": "c"}, "container"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages.0.content.0.type",
        ),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools.0.type"),
        ({"tool_choice": {"type": "weird"}}, "tool_choice.type"),
    ],
)
def test_messages_request_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    request = {
        "model": "m",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}],
        **body,
    }
    with pytest.raises(RouterError) as err:
        to_chat(request)
    assert err.value.status == 400
    assert err.value.param == param


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_chat_answer_as_message(finish: str, stop: str) -> None:
    message = from_chat(
        {
            "id": "c1",
            "model": "m",
            "choices": [
                {
                    "message": {
                        "content": "hi",
                        "tool_calls": [
                            {"id": "t", "function": {"name": "f", "arguments": '{"x":2}'}}
                        ],
                    },
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        }
    )
    assert message["stop_reason"] == stop
    assert message["content"] == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"x": 2}},
    ]
    assert message["usage"] == {
        "input_tokens": 6,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
    }


CHAT_STREAM = b"".join(
    b"data: " + orjson.dumps(c) + b"\n\n"
    for c in [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "He"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "llo"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}]}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}},
    ]
) + b"data: [DONE]\n\n"  # fmt: skip


def _events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for raw in data.split(b"\n\n"):
        if raw:
            name, payload = raw.split(b"\n", 1)
            out.append((name.decode()[7:], json.loads(payload[6:])))
    return out


def _feed_split(translator: Any, data: bytes, cuts: list[int]) -> bytes:
    out, last = [], 0
    for cut in sorted(set(cuts)):
        out.append(translator.feed(data[last:cut]))
        last = cut
    out.append(translator.feed(data[last:]))
    out.append(translator.finish())
    return b"".join(out)


def test_chat_stream_becomes_anthropics_event_sequence() -> None:
    events = _events(_feed_split(ChatToMessages().stream(), CHAT_STREAM, []))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "t",
        "name": "f",
        "input": {},
    }
    assert events[9][1]["delta"]["stop_reason"] == "tool_use"
    assert events[9][1]["usage"]["output_tokens"] == 7


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=len(CHAT_STREAM)), max_size=12))
def test_chat_stream_any_split_same_events(cuts: list[int]) -> None:
    whole = _feed_split(ChatToMessages().stream(), CHAT_STREAM, [])
    assert _feed_split(ChatToMessages().stream(), CHAT_STREAM, cuts) == whole


def test_chat_stream_cut_before_finish_is_an_anthropic_error_event() -> None:
    stream = ChatToMessages().stream()
    stream.feed(CHAT_STREAM[:200])
    tail = stream.finish()
    assert tail.startswith(b"event: error\ndata: ")
    assert json.loads(tail.split(b"data: ", 1)[1])["error"]["type"] == "api_error"


# --- Responses → Messages (Anthropic provider) ---------------------------------------------


def test_responses_request_maps_every_translated_field() -> None:
    body = to_messages(
        {
            "model": "m",
            "instructions": "sys",
            "max_output_tokens": 50,
            "temperature": 1.5,
            "parallel_tool_calls": False,
            "tool_choice": {"type": "function", "name": "f"},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
            "store": False,
            "reasoning": {"effort": "high"},  # dropped
            "top_logprobs": None,  # null: not set
            "user": "u",
            "input": [
                {"role": "developer", "content": "dev"},
                {"role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "https://x.example/a.png"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
                {"type": "function_call_output", "call_id": "c1", "output": "r"},
            ],
        }
    )  # fmt: skip
    assert body == {
        "model": "m",
        "system": [{"type": "text", "text": "sys"}, {"type": "text", "text": "dev"}],
        "max_tokens": 50,
        "temperature": 1.0,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "url", "url": "https://x.example/a.png"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "r"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"conversation": "conv_1"}, "conversation"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format"),
    ],
)
def test_responses_request_refusals_name_the_field(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(RouterError) as err:
        to_messages({"model": "m", "input": "x", **extra})
    assert err.value.status == 400
    assert err.value.param == param


def test_message_as_response_incomplete_on_max_tokens() -> None:
    response = from_message(
        {
            "id": "msg_1",
            "model": "m",
            "content": [{"type": "text", "text": "partial"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 3, "output_tokens": 9, "cache_read_input_tokens": 2},
        },
        Shell({"model": "m"}),
    )
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["content"][0]["text"] == "partial"
    assert response["usage"]["input_tokens"] == 5
    assert response["usage"]["input_tokens_details"] == {"cached_tokens": 2}


ANTHROPIC_STREAM = b"".join(
    [
        _sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 4}}}),
        _sse("ping", {"type": "ping"}),
        _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'}}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 8}}),
        _sse("message_stop", {"type": "message_stop"}),
    ]
)  # fmt: skip


def test_anthropic_stream_becomes_responses_events() -> None:
    data = _feed_split(MessagesToResponses({"model": "m"}).stream(), ANTHROPIC_STREAM, [])
    events = _events(data)
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"a":1}'
    assert final["usage"]["output_tokens"] == 8


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=len(ANTHROPIC_STREAM)), max_size=12))
def test_anthropic_stream_any_split_same_events(cuts: list[int]) -> None:
    def run(points: list[int]) -> bytes:
        translator = MessagesToResponses({"model": "m"})
        translator._shell.created = 0  # the same clock for both runs
        return _feed_split(translator.stream(), ANTHROPIC_STREAM, points)

    assert run(cuts) == run([])


# --- any input: a translation or the router's own error, never anything else ---------------


def _only_router_errors(action: Any) -> None:
    try:
        action()
    except RouterError as exc:
        status = exc.status
    else:
        return
    assert status in (400, 502)


@FUZZ
@given(st.dictionaries(KEYS, json_values, max_size=8))
def test_any_request_translates_or_is_a_400(body: dict[str, Any]) -> None:
    _only_router_errors(lambda: dump_json(to_chat(body)))
    _only_router_errors(lambda: dump_json(to_messages(body)))


@FUZZ
@given(json_values, st.binary(max_size=200))
def test_any_upstream_answer_translates_or_is_a_502(value: Any, noise: bytes) -> None:
    data = json.dumps(value).encode()
    for translator in (ChatToMessages(), MessagesToResponses({})):
        _only_router_errors(lambda t=translator: t.body(data))  # type: ignore[misc]
        stream = translator.stream()
        _only_router_errors(lambda s=stream: s.feed(b"data: " + data + b"\n\n" + noise))  # type: ignore[misc]
        _only_router_errors(lambda s=stream: s.finish())  # type: ignore[misc]
