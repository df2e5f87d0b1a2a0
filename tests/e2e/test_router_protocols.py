"""The Responses API and the Messages API through a real router, with the official SDKs.

Each route is driven for each provider wire format, plain and streamed: pass-through where
the provider speaks the API (Responses: OpenAI-compatible, Azure, Managed; Messages:
Anthropic), translated where it does not (Responses on Anthropic; Messages on the others).
The stub provider's request log shows what reached the upstream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from router_harness import MANAGED_KEY, TOKEN, RouterProcess, StubServer, router_env

RESPONSES_PASSTHROUGH = ("openai", "azure", "managed")
MESSAGES_TRANSLATED = ("openai", "azure", "managed")
ALL = ("openai", "azure", "managed", "anthropic")
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": TOOL["parameters"],
}
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def claude(router: RouterProcess, **kwargs: Any) -> anthropic.Anthropic:
    """The anthropic SDK aimed at the router, the router token as its api_key (x-api-key)."""
    return router.anthropic(api_key=kwargs.pop("api_key", TOKEN), **kwargs)


def upstream(stub: StubServer) -> list[dict[str, Any]]:
    return [e for e in stub.requests() if not str(e["path"]).startswith("/_stub")]


def provider_key(kind: str) -> str:
    return MANAGED_KEY if kind == "managed" else f"sk-{kind}-test-key-000"


def expected_path(kind: str, route: str) -> str:
    if route == "responses":
        return {"azure": "/openai/responses", "anthropic": "/v1/messages"}.get(
            kind, "/v1/responses"
        )
    if kind == "anthropic":
        return "/v1/messages"
    if kind == "azure":
        return "/openai/deployments/stub-model/chat/completions"
    return "/v1/chat/completions"


# --- Responses API --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL)
def test_responses_plain(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stub.clear()
    raw = router.openai().responses.with_raw_response.create(
        model="stub-model", input="hello responses", instructions="Be brief."
    )
    response = raw.parse()
    assert response.output_text == "echo: hello responses"
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert float(raw.headers["x-byollm-overhead-ms"]) >= 0
    (entry,) = upstream(stub)
    assert entry["path"] == expected_path(kind, "responses")
    assert entry["api_key"] == provider_key(kind)  # the router's credential, never the token
    if kind == "azure":
        assert entry["query"]["api-version"] == "2025-04-01-preview"
        assert entry["auth"] == "api-key"
    if kind == "anthropic":  # translated: instructions became system, input a user turn
        assert entry["body"]["system"] == [{"type": "text", "text": "Be brief."}]
        assert entry["body"]["messages"] == [{"role": "user", "content": "hello responses"}]
    else:  # pass-through: the client's body, untouched
        assert entry["body"] == {
            "model": "stub-model",
            "input": "hello responses",
            "instructions": "Be brief.",
        }


@pytest.mark.parametrize("kind", ALL)
def test_responses_streamed(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stream = router.openai().responses.create(model="stub-model", input="stream me", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") >= 2  # relayed as it came, per delta
    for name in ("output_item.added", "content_part.added", "output_text.done", "output_item.done"):
        assert f"response.{name}" in kinds
    with router.openai().responses.stream(model="stub-model", input="stream helper") as helper:
        text = "".join(e.delta for e in helper if e.type == "response.output_text.delta")
        final = helper.get_final_response()
    assert text == "echo: stream helper" == final.output_text
    assert final.usage is not None
    assert final.usage.total_tokens > 0


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("stream", [False, True])
def test_responses_tools_round_trip(
    kind: str, stream: bool, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    api = router.openai()
    if stream:
        with api.responses.stream(model="stub-model", input="weather?", tools=[TOOL]) as s:  # type: ignore[list-item]
            first = s.get_final_response()
    else:
        first = api.responses.create(model="stub-model", input="weather?", tools=[TOOL])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "stub"}
    second = api.responses.create(
        model="stub-model",
        tools=[TOOL],  # type: ignore[list-item]
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "tool result received: sunny"
    if kind == "anthropic":
        body = upstream(stub)[-1]["body"]
        assert body["tools"] == [ANTHROPIC_TOOL]
        assert body["messages"][1]["content"][0]["type"] == "tool_use"
        assert body["messages"][2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": call.call_id,
            "content": "sunny",
        }


def test_responses_image_translated_for_anthropic(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers("anthropic")
    stub.clear()
    router.openai().responses.create(
        model="stub-model",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                ],
            }
        ],
    )
    (entry,) = upstream(stub)
    assert entry["body"]["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("previous_response_id", {"previous_response_id": "resp_123"}),
        ("tools[0].type", {"tools": [{"type": "web_search_preview"}]}),
        ("input[0].type", {"input": [{"type": "item_reference", "id": "msg_1"}]}),
        ("text.format", {"text": {"format": {"type": "json_object"}}}),
    ],
)
def test_responses_untranslatable_is_400_naming_the_field(
    field: str, extra: dict[str, Any], routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers("anthropic")
    stub.clear()
    body: dict[str, Any] = {"model": "stub-model", "input": "hi", **extra}
    with pytest.raises(openai.BadRequestError) as err:
        router.openai().responses.create(**body)
    assert err.value.param == field
    assert err.value.code == "invalid_value"
    assert upstream(stub) == []


@pytest.mark.parametrize("kind", RESPONSES_PASSTHROUGH)
def test_responses_retrieve_input_items_delete(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    api = routers(kind).openai()
    created = api.responses.create(model="stub-model", input="keep me")
    got = api.responses.retrieve(created.id)
    assert got.id == created.id
    assert got.output_text == "echo: keep me"
    items = api.responses.input_items.list(created.id, limit=5)
    assert [i.type for i in items.data] == ["message"]
    api.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):  # the provider's own 404, verbatim
        api.responses.retrieve(created.id)
    entry = upstream(stub)[-1]
    if kind == "azure":
        assert entry["path"] == f"/openai/responses/{created.id}"
        assert entry["query"]["api-version"] == "2025-04-01-preview"
    else:
        assert entry["path"] == f"/v1/responses/{created.id}"


def test_responses_retrieve_on_anthropic_is_a_clear_400(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    api = routers("anthropic").openai()
    stub.clear()
    for call in (
        lambda: api.responses.retrieve("resp_1"),
        lambda: api.responses.delete("resp_1"),
        lambda: api.responses.input_items.list("resp_1"),
    ):
        with pytest.raises(openai.BadRequestError, match="keeps no responses") as err:
            call()
        assert err.value.code == "unsupported_by_provider"
    assert upstream(stub) == []


# --- Messages API -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL)
def test_messages_plain(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stub.clear()
    raw = claude(router).messages.with_raw_response.create(
        model="stub-model",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello messages"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello messages"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert float(raw.headers["x-byollm-overhead-ms"]) >= 0
    (entry,) = upstream(stub)
    assert entry["path"] == expected_path(kind, "messages")
    assert entry["api_key"] == provider_key(kind)  # the router's credential, never the token
    if kind == "anthropic":  # pass-through, the client's anthropic-version kept
        assert entry["body"]["system"] == "Be brief."
        assert entry["anthropic_version"] == raw.http_request.headers["anthropic-version"]
        assert entry["api_key"] == "sk-anthropic-test-key-000"
    else:
        assert entry["body"]["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello messages"},
        ]
        field = "max_tokens" if kind == "managed" else "max_completion_tokens"
        assert entry["body"][field] == 100


def _sse_names(router: RouterProcess, body: dict[str, Any]) -> list[str]:
    with httpx.stream(
        "POST", f"{router.url}/v1/messages", headers={"x-api-key": TOKEN}, json=body
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[7:] for line in response.iter_lines() if line.startswith("event: ")]


@pytest.mark.parametrize("kind", ALL)
def test_messages_streamed_event_sequence(
    kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    router = routers(kind)
    with claude(router).messages.stream(
        model="stub-model", max_tokens=100, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream me"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    names = [n for n in _sse_names(router, {
        "model": "stub-model",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "seq"}],
    }) if n != "ping"]  # fmt: skip
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("stream", [False, True])
def test_messages_tools_round_trip(
    kind: str, stream: bool, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    api = claude(router)
    ask = [{"role": "user", "content": "weather?"}]
    if stream:
        with api.messages.stream(
            model="stub-model",
            max_tokens=100,
            messages=ask,
            tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
        ) as s:
            first = s.get_final_message()
    else:
        first = api.messages.create(
            model="stub-model",
            max_tokens=100,
            messages=ask,
            tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
        )
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1
    use = uses[0]
    assert use.name == "get_weather"
    assert use.input == {"city": "stub"}
    second = api.messages.create(
        model="stub-model",
        max_tokens=100,
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
        messages=[
            *ask,  # type: ignore[list-item]
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ],
    )
    assert second.content[0].type == "text"
    assert "sunny" in second.content[0].text
    if kind != "anthropic":
        messages = upstream(stub)[-1]["body"]["messages"]
        assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert messages[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}


@pytest.mark.parametrize("kind", MESSAGES_TRANSLATED)
def test_messages_image_translated(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stub.clear()
    claude(router).messages.create(
        model="stub-model",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            }
        ],
    )
    (entry,) = upstream(stub)
    assert entry["body"]["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG}"},
    }


def test_messages_untranslatable_is_anthropic_shaped_400(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers("openai")
    stub.clear()
    with pytest.raises(anthropic.BadRequestError) as err:
        claude(router).messages.create(
            model="stub-model",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    body = err.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("tools.0.type: Tool type 'web_search_20250305'")
    assert upstream(stub) == []


def test_count_tokens(routers: Callable[[str], RouterProcess], stub: StubServer) -> None:
    counted = claude(routers("anthropic")).messages.count_tokens(
        model="stub-model", messages=[{"role": "user", "content": "count these tokens"}]
    )
    assert counted.input_tokens > 0
    stub.clear()
    with pytest.raises(anthropic.BadRequestError, match="not supported by provider openai"):
        claude(routers("openai")).messages.count_tokens(
            model="stub-model", messages=[{"role": "user", "content": "x"}]
        )
    assert upstream(stub) == []


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_messages_auth_x_api_key_or_bearer(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    ask: list[Any] = [{"role": "user", "content": "hi"}]
    with anthropic.Anthropic(base_url=router.url, auth_token=TOKEN, max_retries=0) as bearer:
        assert bearer.messages.create(model="stub-model", max_tokens=5, messages=ask).content
    stub.clear()
    with pytest.raises(anthropic.AuthenticationError) as err:
        claude(router, api_key="wrong").messages.create(
            model="stub-model", max_tokens=5, messages=ask
        )
    assert err.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "Missing or invalid bearer token for this router.",
        },
    }
    assert upstream(stub) == []
    # x-api-key is accepted on the new routes only; chat completions stays bearer-only.
    chat = httpx.post(
        f"{router.base_url}/chat/completions",
        headers={"x-api-key": TOKEN},
        json={"model": "stub-model", "messages": ask},
    )
    assert chat.status_code == 401


# --- usage and auto-routing ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "route"), [("openai", "responses"), ("anthropic", "messages")])
def test_passthrough_usage_untouched(
    kind: str, route: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    """Pass-through answers reach the client byte for byte: usage included."""
    router = routers(kind)
    if route == "responses":
        body: dict[str, Any] = {"model": "stub-model", "input": "usage", "store": False}
        headers = {"authorization": f"Bearer {TOKEN}"}
        direct_headers = {"authorization": "Bearer k"}
    else:
        body = {
            "model": "stub-model",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "u"}],
        }
        headers = {"x-api-key": TOKEN, "anthropic-version": "2023-06-01"}
        direct_headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    via = httpx.post(f"{router.url}/v1/{route}", headers=headers, json=body).json()
    direct = httpx.post(f"{stub.url}/v1/{route}", headers=direct_headers, json=body).json()
    assert via["usage"] == direct["usage"]


ROUTING = {
    "auto": True,
    "models": {
        "fast": "stub-classify-code",
        "code": "stub-code-model",
        "vision": "stub-vision-model",
        "balanced": "stub-balanced-model",
    },
}


@pytest.mark.parametrize("kind", ALL)
def test_auto_model_on_both_routes(
    kind: str,
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
) -> None:
    router = start_router(router_env(kind, stub, LLM_ROUTING=json.dumps(ROUTING)))
    stub.clear()
    raw = router.openai().responses.with_raw_response.create(
        model="auto", input="refactor this python function"
    )
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.parse().output_text.startswith("echo:")
    log = upstream(stub)
    assert len(log) == 2  # the classifier, then the request, both to the same upstream
    assert (log[-1].get("model") or log[-1].get("deployment")) == "stub-code-model"
    stub.clear()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    raw_m = claude(router).messages.with_raw_response.create(
        model="auto", max_tokens=10, messages=[{"role": "user", "content": [image]}]
    )
    assert raw_m.headers["x-byollm-category"] == "vision"  # the rule: no classifier call
    (entry,) = upstream(stub)
    assert (entry.get("model") or entry.get("deployment")) == "stub-vision-model"


# --- privacy --------------------------------------------------------------------------------

CANARY = "CANARY-PROTOCOLS-5d1e-do-not-log"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_canary_prompt_never_in_logs_or_metrics(
    kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    router = routers(kind)
    api, messages_api = router.openai(), claude(router)
    assert CANARY in api.responses.create(model="stub-model", input=CANARY).output_text
    assert CANARY in "".join(
        e.delta for e in api.responses.create(model="stub-model", input=CANARY, stream=True)
        if e.type == "response.output_text.delta"
    )  # fmt: skip
    ask: list[Any] = [{"role": "user", "content": CANARY}]
    reply = messages_api.messages.create(model="stub-model", max_tokens=50, messages=ask)
    assert CANARY in reply.content[0].text  # type: ignore[union-attr]
    with messages_api.messages.stream(model="stub-model", max_tokens=50, messages=ask) as s:
        assert CANARY in "".join(s.text_stream)
    for model in ("stub-error-429", "stub-reset"):
        with pytest.raises((openai.APIError, anthropic.APIError)):
            api.responses.create(model=model, input=CANARY)
        with pytest.raises((openai.APIError, anthropic.APIError)):
            messages_api.messages.create(model=model, max_tokens=5, messages=ask)
    metrics = httpx.get(f"{router.url}/metrics").text
    assert CANARY not in metrics
    assert CANARY not in router.log_text()
    assert '"route":"responses"' in router.log_text().replace(" ", "")


def test_stream_options_and_usage_untouched_and_never_recorded(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    """stream_options reach the upstream as sent, usage reaches the client as sent, and
    the router keeps no token count: not in /metrics, not in its log."""
    router = routers("openai")
    stub.clear()
    options = {"include_usage": True}
    chunks = list(
        router.openai().chat.completions.create(
            model="stub-model",
            messages=[{"role": "user", "content": "usage please"}],
            stream=True,
            stream_options=options,  # type: ignore[arg-type]
        )
    )
    usage = [c.usage for c in chunks if c.usage]
    streamed = router.openai().responses.create(
        model="stub-model",
        input="usage please",
        stream=True,
        stream_options={"include_obfuscation": False},
    )
    completed = [e for e in streamed if e.type == "response.completed"]
    bodies = [e["body"] for e in upstream(stub)]
    assert bodies[0]["stream_options"] == options
    assert bodies[1]["stream_options"] == {"include_obfuscation": False}
    assert len(usage) == 1
    assert usage[0].total_tokens > 0
    assert completed[0].response.usage is not None
    counted = {usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens}
    metrics = httpx.get(f"{router.url}/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line[:1] != "#"}
    assert not [name for name in names if "token" in name]
    for line in router.log_lines():
        record = json.loads(line)
        assert not any("token" in key for key in record)
        numbers = {v for k, v in record.items() if isinstance(v, int) and "status" not in k}
        assert not counted & numbers
