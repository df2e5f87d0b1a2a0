"""Pure OpenAI ⇄ Anthropic translation functions of the router's Anthropic adapter."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from byollm_router.errors import RouterError
from byollm_router.providers.anthropic import (
    Anthropic,
    AnthropicStream,
    convert_messages,
    convert_tool_choice,
    from_anthropic,
    image_block,
    to_anthropic,
)


def test_system_and_developer_hoisted_and_turns_merged() -> None:
    system, messages = convert_messages(
        [
            {"role": "system", "content": "a"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "b"}]},
            {"role": "user", "content": "again"},
        ]
    )
    assert system == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert messages == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}],
        }
    ]


def test_tool_round_trip_messages() -> None:
    _, messages = convert_messages(
        [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"city":"P"}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "w", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
        ]
    )
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "P"}},
            {"type": "tool_use", "id": "c2", "name": "w", "input": {}},
        ],
    }
    # Consecutive tool results become ONE user turn (Anthropic wants alternation).
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "rain"},
        ],
    }
    assert len(messages) == 3


def test_images() -> None:
    assert image_block("data:image/jpeg;base64,AAAA", "p") == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"},
    }
    assert image_block("https://x.test/a.png", "p") == {
        "type": "image",
        "source": {"type": "url", "url": "https://x.test/a.png"},
    }
    with pytest.raises(RouterError) as err:
        image_block("file:///etc/passwd", "messages[0].content[1]")
    assert err.value.status == 400
    assert err.value.param == "messages[0].content[1]"


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    assert convert_tool_choice(choice, parallel) == expected


def test_request_fields() -> None:
    body = to_anthropic(
        {
            "model": "claude",
            "messages": [{"role": "user", "content": "x"}],
            "max_completion_tokens": 77,
            "temperature": 2,
            "top_p": 0.9,
            "stop": ["a", "b"],
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "u-1",
            "top_k": 5,
            "frequency_penalty": 1,
            "logprobs": True,
            "response_format": {"type": "json_object"},
            "x_unknown": 1,
        }
    )
    assert body == {
        "model": "claude",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 77,
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["a", "b"],
        "stream": True,
        "metadata": {"user_id": "u-1"},
        "top_k": 5,
    }
    assert (
        to_anthropic({"model": "m", "messages": [{"role": "user", "content": "x"}]})["max_tokens"]
        == 4096
    )


@pytest.mark.parametrize(
    "messages",
    [[], "hi", [{"role": "function", "content": "x"}], [{"role": "tool", "content": "x"}],
     [{"role": "user", "content": [{"type": "input_audio"}]}]],
)  # fmt: skip
def test_bad_requests_are_400(messages: Any) -> None:
    with pytest.raises(RouterError) as err:
        to_anthropic({"model": "m", "messages": messages})
    assert err.value.status == 400


def test_n_greater_than_one_refused() -> None:
    with pytest.raises(RouterError):
        to_anthropic({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]})


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
     ("stop_sequence", "stop"), ("refusal", "content_filter"), (None, "stop")],
)  # fmt: skip
def test_response(stop_reason: str | None, finish: str) -> None:
    msg = {
        "id": "msg_1",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "there"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3},
    }
    out = from_anthropic(msg, 123)
    choice = out["choices"][0]
    assert out["object"] == "chat.completion"
    assert out["created"] == 123
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "Hello there"
    assert choice["message"]["reasoning_content"] == "hmm"
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]
    assert out["usage"] == {
        "prompt_tokens": 13,
        "completion_tokens": 5,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 3},
    }


def test_tool_only_response_has_null_content() -> None:
    out = from_anthropic(
        {
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            "stop_reason": "tool_use",
        },
        0,
    )
    assert out["choices"][0]["message"]["content"] is None


def _events(*events: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\r\ndata: " + orjson.dumps(e) + b"\r\n\r\n"
        for e in events
    )


STREAM = _events(
    {
        "type": "message_start",
        "message": {"id": "msg_s", "model": "claude", "usage": {"input_tokens": 9}},
    },
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " you"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "t9", "name": "f", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": "2}"},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
    {"type": "message_stop"},
)


def _chunks(sse: bytes) -> list[Any]:
    out = []
    for block in sse.split(b"\n\n"):
        if block.startswith(b"data: "):
            payload = block[6:]
            out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def _check_stream(chunks: list[Any]) -> None:
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Hi you"
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "t9",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"a":2}'
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    usage = chunks[-2]
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 9
    assert usage["usage"]["completion_tokens"] == 4
    assert {c["id"] for c in chunks[:-1]} == {"msg_s"}


def test_stream_translation() -> None:
    translator = AnthropicStream(include_usage=True, created=1)
    out = translator.feed(STREAM) + translator.finish()
    _check_stream(_chunks(out))


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_stream_translation_any_split(cuts: list[int]) -> None:
    """Events straddling network reads translate the same as one big read."""
    translator = AnthropicStream(include_usage=True, created=1)
    points = [0, *sorted(set(cuts)), len(STREAM)]
    out = b"".join(translator.feed(STREAM[a:b]) for a, b in pairwise(points))
    _check_stream(_chunks(out + translator.finish()))


def test_stream_without_usage_and_truncated_stream() -> None:
    translator = AnthropicStream(include_usage=False, created=1)
    cut = STREAM[: STREAM.index(b"event: message_delta")]
    chunks = _chunks(translator.feed(cut) + translator.finish())
    assert chunks[-1]["error"]["code"] == "upstream_disconnected"
    full = AnthropicStream(include_usage=False, created=1)
    chunks = _chunks(full.feed(STREAM) + full.finish())
    assert chunks[-1] == "[DONE]"
    assert all(c == "[DONE]" or c["choices"] for c in chunks)


def test_stream_error_event() -> None:
    translator = AnthropicStream(include_usage=False, created=1)
    out = translator.feed(
        _events({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    assert _chunks(out)[0]["error"] == {
        "message": "Overloaded",
        "type": "overloaded_error",
        "param": None,
        "code": None,
    }
    assert translator.finish() == b""


@given(
    ending=st.sampled_from([b"\n", b"\r", b"\r\n"]),
    cuts=st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=40),
)
def test_stream_any_line_ending_any_split(ending: bytes, cuts: list[int]) -> None:
    """SSE lines end in LF, CR or CRLF; a CRLF split across two reads is one line break."""
    sse = STREAM.replace(b"\r\n", ending)
    translator = AnthropicStream(include_usage=True, created=1)
    points = [0, *sorted({min(c, len(sse) - 1) for c in cuts}), len(sse)]
    out = b"".join(translator.feed(sse[a:b]) for a, b in pairwise(points))
    _check_stream(_chunks(out + translator.finish()))


def test_stream_event_size_is_bounded() -> None:
    """An event that never ends is refused once it exceeds the limit (a 502 error event in
    the app), however it arrives; events under the limit translate."""
    translator = AnthropicStream(include_usage=False, created=1, max_event_bytes=4096)
    assert translator.feed(STREAM[: STREAM.index(b"event: content_block_start")])
    head = b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"'
    assert translator.feed(head + b"a" * 3000) == b""
    with pytest.raises(RouterError) as err:
        translator.feed(b"a" * 2000)
    assert (err.value.status, err.value.code) == (502, "upstream_response_too_large")


def test_stream_of_many_reads_without_a_boundary_is_linear() -> None:
    """16 MiB fed in 16 KiB reads with no event boundary: each byte is scanned once (the
    quadratic parser rescanned the whole buffer on every read: ~1000x the work here)."""
    translator = AnthropicStream(include_usage=False, created=1, max_event_bytes=32 << 20)
    piece = b"data: " + b"x" * (16 * 1024 - 6)
    for _ in range(1024):
        assert translator.feed(piece) == b""
    assert b"upstream_disconnected" in translator.finish()


@pytest.mark.parametrize(
    "event",
    [b"data: [1, 2]\n\n", b"data: {broken\n\n", b'data: {"type": "content_block_start",'
     b' "index": 1e400, "content_block": {"type": "tool_use"}}\n\n',
     b'data: {"type": "message_start", "message": 7}\n\n'],
)  # fmt: skip
def test_stream_junk_events_are_a_502(event: bytes) -> None:
    translator = AnthropicStream(include_usage=False, created=1)
    with pytest.raises(RouterError) as err:
        translator.feed(event)
    assert err.value.status == 502


HUGE = 10**400  # beyond float range; JSON allows it, orjson refuses it


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": [{"role": "assistant", "tool_calls": 5}]},
        {"messages": [{"role": "assistant", "tool_calls": True}]},
        {"messages": [{"role": "assistant", "tool_calls": {"id": "x"}}]},
        {"messages": [{"role": "assistant", "content": 3}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": HUGE}]}]},
        {"messages": [{"role": "system", "content": [{"type": "text", "text": 1}]}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": {}}]}]},
        {"temperature": "hot"},
        {"temperature": True},
        {"temperature": float("nan")},
        {"top_p": "x"},
        {"max_tokens": 1.5},
        {"max_tokens": "many"},
        {"tools": [{"type": "function", "function": {"name": 5}}]},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]},
        {"tool_choice": {"type": "function", "function": {"name": 1}}},
    ],
)
def test_mistyped_fields_are_400(fields: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    with pytest.raises(RouterError) as err:
        to_anthropic(body)
    assert err.value.status == 400


@pytest.mark.parametrize(
    "fields",
    [{"temperature": HUGE}, {"temperature": -HUGE}, {"top_p": HUGE}, {"max_tokens": HUGE},
     {"top_k": HUGE}],
)  # fmt: skip
def test_integers_beyond_float_range_are_sent_or_refused_cleanly(fields: dict[str, Any]) -> None:
    """Sent on as JSON (Anthropic judges the value) — never an OverflowError or a 500."""
    provider = Anthropic("https://api.anthropic.com/v1", "sk-ant", max_event_bytes=1 << 20)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    call = provider.chat(body, b"", {})
    assert call.content is not None
    sent = json.loads(call.content)
    assert sent["messages"] == [{"role": "user", "content": "x"}]
    if "temperature" in fields:
        assert sent["temperature"] == min(fields["temperature"], 1.0)
