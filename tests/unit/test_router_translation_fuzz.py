"""Fuzzing both directions of the OpenAI ⇄ Anthropic translation over the wire schemas.

Request direction: any chat request (every field, well typed or not, huge integers
included) either becomes an Anthropic request that is valid JSON, or is refused with a
4xx the router answers itself — never another exception (the app would answer 500).
Response direction: any Anthropic answer, non-streamed or streamed (split at random
points), becomes OpenAI-shaped output or a 502 ``RouterError`` — nothing else.

The figures (inputs per run, outcomes seen) are printed at the end of the module. The
end-to-end counterpart over real sockets is ``tests/e2e/test_router_no_500.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stubs import wire_strategies as ws
from stubs.figures import print_figure

from byollm_router import autoroute
from byollm_router.app import _loads
from byollm_router.errors import RouterError
from byollm_router.providers.anthropic import Anthropic, ChatTranslator
from byollm_router.providers.base import dump_json

OUTCOMES: Counter[str] = Counter()
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROVIDER = Anthropic("https://api.anthropic.com/v1", "sk-ant-fuzz", max_event_bytes=1 << 20)


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(OUTCOMES.values())
    seen = ", ".join(f"{k}:{v}" for k, v in sorted(OUTCOMES.items()))
    line = f"translation fuzz (unit): {total} inputs; outcomes {seen}; 500s: 0"
    print_figure(request.config, line)


T = TypeVar("T")


def attempt(action: Callable[[], T]) -> tuple[T | None, RouterError | None]:
    """``action()``'s result, or the RouterError it raised (any other exception fails)."""
    try:
        return action(), None
    except RouterError as exc:
        return None, exc


def _is_openai_chunk_stream(data: bytes) -> None:
    for event in data.split(b"\n\n"):
        if not event:
            continue
        assert event.startswith(b"data: "), event[:100]
        payload = event[6:]
        if payload != b"[DONE]":
            assert isinstance(json.loads(payload), dict)


@FUZZ
@given(body=ws.chat_request)
def test_requests_translate_or_are_refused(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    parsed = _loads(raw)  # exactly what the app does first
    call, refused = attempt(lambda: PROVIDER.chat(parsed, raw, {}))
    if refused is not None:
        OUTCOMES[f"request-{refused.status}"] += 1
        assert 400 <= refused.status < 500, refused.code
        return
    OUTCOMES["request-sent"] += 1
    assert call is not None
    assert call.content is not None
    sent = json.loads(call.content)
    assert isinstance(sent["messages"], list)
    assert isinstance(sent["max_tokens"], int)


@FUZZ
@given(message=ws.maybe(ws.anthropic_message))
def test_answers_translate_or_are_a_502(message: Any) -> None:
    translator = ChatTranslator(include_usage=True)
    data, failed = attempt(lambda: translator.body(json.dumps(message).encode()))
    if failed is not None:
        OUTCOMES[f"answer-{failed.status}"] += 1
        assert failed.status == 502
        return
    OUTCOMES["answer-translated"] += 1
    assert data is not None
    out = json.loads(data)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["role"] == "assistant"


@FUZZ
@given(
    stream=ws.anthropic_events | st.binary(max_size=200),
    cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=6),
    include_usage=st.booleans(),
)
def test_streams_translate_or_end_in_a_502(
    stream: bytes, cuts: list[int], include_usage: bool
) -> None:
    translator = ChatTranslator(include_usage, max_event_bytes=1 << 20).stream()
    points = [0, *sorted({c for c in cuts if c < len(stream)}), len(stream)]
    out = b""
    try:
        for a, b in pairwise(points):
            out += translator.feed(stream[a:b])
        out += translator.finish()
    except RouterError as exc:
        failed = exc
        out += exc.sse_event()
    else:
        failed = None
    OUTCOMES["stream-translated" if failed is None else f"stream-{failed.status}"] += 1
    assert failed is None or failed.status == 502
    _is_openai_chunk_stream(out)


@FUZZ
@given(body=ws.chat_request)
def test_auto_router_reads_any_request(body: dict[str, Any]) -> None:
    """The auto-router's rules and classifier prompt read the client's messages before any
    translation: any shape must give a category (or none), never an exception. (A content
    part whose type was a list once raised TypeError here: a 500.)"""
    parsed = _loads(json.dumps(body).encode())
    category = autoroute.rule_category(parsed)
    prompt = autoroute.classifier_request_body(autoroute.classifier_messages(parsed), "m")
    assert json.loads(dump_json(prompt))["model"] == "m"
    OUTCOMES["auto-" + (category.value if category else "classifier")] += 1
