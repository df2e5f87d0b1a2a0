# ruff: noqa: E501  (schemas read best one field per line)
"""No 500 from any client input on the Responses and Messages routes, over real sockets.

Hypothesis builds Responses and Messages requests over their schemas (each field well
typed or not) and sends them where the router translates (Responses → Anthropic, Messages
→ OpenAI-wire and Azure) and to an auto-routing router. Every answer is a status other than
500; errors have the route's shape (or are the provider's own, passed through); streams
are SSE events carrying JSON objects. Figures are printed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from router_harness import TOKEN, RouterProcess, StubServer, assert_routers_clean, router_env, tally
from stubs.figures import print_figure

STATUSES: Counter[str] = Counter()
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ROUTING = '{"auto": true, "models": {"fast": "stub-classify-code", "code": "stub-model"}}'

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
text = st.text(max_size=12)
image_source = st.fixed_dictionaries(
    {"type": st.sampled_from(["base64", "url", "file"])},
    optional={"media_type": st.just("image/png"), "data": st.just("AAAA"), "url": text},
)
anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text | junk}),
    st.fixed_dictionaries({"type": st.just("image"), "source": image_source | junk}),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": text, "name": text, "input": junk | st.just({})}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_result"),
            "tool_use_id": text | junk,
            "content": text
            | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}))
            | junk,
        }
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["document", "thinking", "bogus"])}),
    junk,
)
anthropic_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "user", "assistant", "system"]),
        "content": text.filter(bool) | st.lists(anthropic_block, min_size=1, max_size=3),
    }
)
messages_request = st.fixed_dictionaries(
    {"messages": st.lists(anthropic_message, min_size=1, max_size=3)},
    optional={
        "model": st.sampled_from(["stub-model", "stub-model", "auto", ""]),
        "max_tokens": st.integers(min_value=-5, max_value=2**40) | junk,
        "system": text | st.lists(anthropic_block, max_size=2) | junk,
        "tools": st.lists(
            st.fixed_dictionaries(
                {"name": text | junk},
                optional={"input_schema": st.just({"type": "object"}) | junk, "type": text},
            ),
            max_size=2,
        )
        | junk,
        "tool_choice": st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])}, optional={"name": text}
        )
        | junk,
        "stop_sequences": st.lists(text, max_size=2) | junk,
        "temperature": junk,
        "metadata": junk,
        "thinking": junk,
    },
)
responses_part = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text"]), "text": text | junk}),
    st.fixed_dictionaries({"type": st.just("input_image"), "image_url": st.sampled_from(["data:image/png;base64,AAAA", "https://x.example/a.png", "ftp://x", "data:x"]) | junk}),
    st.fixed_dictionaries({"type": st.sampled_from(["input_file", "refusal", "bogus"])}),
    junk,
)  # fmt: skip
responses_item = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | junk},
        optional={"type": st.just("message"), "content": text | st.lists(responses_part, max_size=3) | junk},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call"), "call_id": text | junk, "name": text | junk},
        optional={"arguments": st.sampled_from(["{}", '{"a":1}', "[1]", "nope"]) | junk},
    ),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": text | junk, "output": text | junk}),
    st.fixed_dictionaries({"type": st.sampled_from(["reasoning", "item_reference", "x"])}),
    junk,
)  # fmt: skip
responses_request = st.fixed_dictionaries(
    {"input": text | st.lists(responses_item, min_size=1, max_size=4)},
    optional={
        "model": st.sampled_from(["stub-model", "stub-model", "auto", ""]),
        "instructions": text | junk,
        "max_output_tokens": st.integers(min_value=-5, max_value=2**40) | junk,
        "tools": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["function", "web_search"])}, optional={"name": text | junk, "parameters": junk}), max_size=2) | junk,
        "tool_choice": st.sampled_from(["auto", "required", "none", "x"]) | junk,
        "parallel_tool_calls": junk,
        "temperature": junk,
        "text": junk,
        "previous_response_id": st.none() | text,
        "store": junk,
    },
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzzed(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, RouterProcess]]:
    routers = {
        kind: start_router(router_env(kind, stub)) for kind in ("anthropic", "openai", "azure")
    }
    routers["auto"] = start_router(router_env("openai", stub, LLM_ROUTING=ROUTING))
    yield routers
    total, seen = tally(STATUSES)
    print_figure(request.config, f"protocols fuzz (e2e): {total} requests; {seen}; 500s: 0")
    assert_routers_clean(routers.values())


def _send(router: RouterProcess, route: str, body: dict[str, Any]) -> None:
    headers = {"content-type": "application/json"}
    headers |= {"x-api-key": TOKEN} if route == "messages" else {"authorization": f"Bearer {TOKEN}"}
    with httpx.stream(
        "POST",
        f"{router.url}/v1/{route}",
        content=json.dumps(body).encode(),
        headers=headers,
        timeout=20,
    ) as response:
        data = response.read()
    status = response.status_code
    sse = response.headers.get("content-type", "").startswith("text/event-stream")
    STATUSES[f"{route}-{'sse' if sse else 'json'}-{status}"] += 1
    assert status != 500, data[:300]
    if status >= 400:
        error = json.loads(data)
        assert "error" in error or error.get("type") == "error", error
    elif sse:
        for event in data.split(b"\n\n"):
            if event:
                payload = event.split(b"data: ", 1)[1]
                assert isinstance(json.loads(payload), dict)
    else:
        assert json.loads(data)["type" if route == "messages" else "object"] in (
            "message",
            "response",
        )


@FUZZ
@given(body=responses_request, kind=st.sampled_from(["anthropic", "auto"]), stream=st.booleans())
def test_no_responses_input_is_a_500(
    fuzzed: dict[str, RouterProcess], body: dict[str, Any], kind: str, stream: bool
) -> None:
    body.setdefault("stream", stream)
    _send(fuzzed[kind], "responses", body)


@FUZZ
@given(
    body=messages_request, kind=st.sampled_from(["openai", "azure", "auto"]), stream=st.booleans()
)
def test_no_messages_input_is_a_500(
    fuzzed: dict[str, RouterProcess], body: dict[str, Any], kind: str, stream: bool
) -> None:
    body.setdefault("stream", stream)
    _send(fuzzed[kind], "messages", body)
