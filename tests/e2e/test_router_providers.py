"""Every provider type through a real router process, with the official SDKs as clients.

The router and the stub provider are real processes on 127.0.0.1; the stub speaks each
provider's own wire format (OpenAI, Azure deployments, Anthropic Messages), so these tests
prove the router's adapters against the formats, not against mocks of the router.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from router_harness import MANAGED_KEY, OPENAI_WIRE_KINDS, PROVIDER_KINDS, RouterProcess, StubServer

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def client(router: RouterProcess) -> openai.OpenAI:
    return router.openai()


def last_upstream(stub: StubServer) -> dict[str, Any]:
    entries = [e for e in stub.requests() if not e["path"].startswith("/_stub")]
    return entries[-1]


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_chat(kind: str, routers: Callable[[str], RouterProcess], stub: StubServer) -> None:
    router = routers(kind)
    stub.clear()
    reply = client(router).chat.completions.create(
        model="stub-model",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello router"},
        ],
    )
    assert reply.choices[0].message.content == "echo: hello router"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.total_tokens > 0
    seen = last_upstream(stub)
    expected_path = {
        "azure": "/openai/deployments/stub-model/chat/completions",
        "anthropic": "/v1/messages",
    }.get(kind, "/v1/chat/completions")
    assert seen["path"] == expected_path
    assert seen["model"] in ("stub-model", None)  # Azure: the deployment is in the path
    expected_auth = {"azure": "api-key", "anthropic": "x-api-key"}.get(kind, "bearer")
    assert seen["auth"] == expected_auth
    # Managed: the platform's LiteLLM key, never a tenant key.
    assert seen["api_key"] == (MANAGED_KEY if kind == "managed" else f"sk-{kind}-test-key-000")
    if kind == "azure":
        assert seen["query"] == {"api-version": "2024-10-21"}
    if kind == "anthropic":
        assert seen["anthropic_version"] == "2023-06-01"
        assert seen["body"]["system"] == [{"type": "text", "text": "be brief"}]
        assert seen["body"]["messages"] == [{"role": "user", "content": "hello router"}]


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_streaming(kind: str, routers: Callable[[str], RouterProcess]) -> None:
    router = routers(kind)
    stream = client(router).chat.completions.create(
        model="stub-model",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    usage = [c.usage for c in chunks if c.usage]
    assert usage
    assert usage[-1].completion_tokens > 0


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tools(kind: str, stream: bool, routers: Callable[[str], RouterProcess]) -> None:
    router = routers(kind)
    api = client(router)
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in api.chat.completions.create(
            model="stub-model", messages=messages, tools=TOOLS, tool_choice="auto", stream=True
        ):
            if not chunk.choices:
                continue
            for tc in chunk.choices[0].delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.id or ""
                if tc.function:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls"
        call = calls[0]
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        reply = api.chat.completions.create(
            model="stub-model", messages=messages, tools=TOOLS, tool_choice="auto"
        )
        assert reply.choices[0].finish_reason == "tool_calls"
        tool_calls = reply.choices[0].message.tool_calls
        assert tool_calls
        fn = tool_calls[0].function  # type: ignore[union-attr]
        call_id, name, arguments = tool_calls[0].id, fn.name, fn.arguments
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "stub"}
    # Send the tool result back: the provider sees a well-formed tool turn.
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
    ]
    final = api.chat.completions.create(model="stub-model", messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "tool result received: sunny, 21C"


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_embeddings(kind: str, routers: Callable[[str], RouterProcess], stub: StubServer) -> None:
    router = routers(kind)
    api = client(router)
    if kind == "anthropic":
        with pytest.raises(openai.BadRequestError) as err:
            api.embeddings.create(model="stub-embed", input=["a", "b"])
        assert err.value.code == "unsupported_by_provider"
        return
    stub.clear()
    result = api.embeddings.create(model="stub-embed", input=["alpha", "beta"])  # base64
    assert [len(d.embedding) for d in result.data] == [8, 8]
    floats = api.embeddings.create(model="stub-embed", input="alpha", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)
    paths = {e["path"] for e in stub.requests()}
    expected = "/openai/deployments/stub-embed/embeddings" if kind == "azure" else "/v1/embeddings"
    assert paths == {expected}


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_models(kind: str, routers: Callable[[str], RouterProcess]) -> None:
    router = routers(kind)
    ids = [m.id for m in client(router).models.list()]
    if kind == "azure":
        assert ids == ["stub-model"]  # the configured deployments
    else:
        assert "stub-model" in ids
        assert "stub-fast" in ids


@pytest.mark.parametrize("kind", ["openai", "azure", "anthropic"])
def test_model_defaults_to_llm_model(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stub.clear()
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"messages": [{"role": "user", "content": "no model named"}]},
    )
    assert response.status_code == 200, response.text
    seen = last_upstream(stub)
    if kind == "azure":
        assert seen["path"] == "/openai/deployments/stub-model/chat/completions"
    else:
        assert seen["model"] == "stub-model"


@pytest.mark.parametrize("kind", OPENAI_WIRE_KINDS)
def test_unknown_fields_and_body_pass_through(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stub.clear()
    body = {
        "model": "stub-model",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"},
        "x_vendor_option": {"nested": [1, 2.5, "three"]},
        "seed": 7,
    }
    raw = json.dumps(body, indent=1).encode()  # unusual formatting survives byte for byte
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers={**router.headers, "content-type": "application/json", "x-title": "my-agent"},
        content=raw,
    )
    assert response.status_code == 200
    seen = last_upstream(stub)
    assert seen["body"] == body
    assert seen["headers"].get("x-title") == "my-agent"


def test_anthropic_translation_of_a_full_conversation(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    """System prompt hoisted, images converted, OpenAI-only fields dropped (Anthropic
    refuses unknown fields), tool_choice/stop/max_tokens mapped."""
    router = routers("anthropic")
    stub.clear()
    image = "data:image/png;base64,iVBORw0KGgo="
    reply = client(router).chat.completions.create(
        model="stub-model",
        messages=[
            {"role": "system", "content": "sys one"},
            {"role": "developer", "content": "sys two"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
        ],
        max_tokens=50,
        temperature=1.5,
        stop="END",
        presence_penalty=0.5,
        seed=3,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    sent = last_upstream(stub)["body"]
    assert sent["system"] == [
        {"type": "text", "text": "sys one"},
        {"type": "text", "text": "sys two"},
    ]
    assert sent["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert sent["max_tokens"] == 50
    assert sent["temperature"] == 1.0
    assert sent["stop_sequences"] == ["END"]
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    assert "presence_penalty" not in sent
    assert "seed" not in sent


def test_anthropic_stream_error_event_reaches_client(
    routers: Callable[[str], RouterProcess],
) -> None:
    stream = client(routers("anthropic")).chat.completions.create(
        model="stub-error-event", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)


def test_stub_speaks_anthropic_wire_format(stub: StubServer) -> None:
    """The official anthropic SDK against the stub itself: the format the router's
    Anthropic adapter is tested against is the real one."""
    with anthropic.Anthropic(base_url=stub.url, api_key="sk-ant-test", max_retries=0) as api:
        message = api.messages.create(
            model="stub-model", max_tokens=32, messages=[{"role": "user", "content": "ping"}]
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == "echo: ping"
        with api.messages.stream(
            model="stub-model", max_tokens=32, messages=[{"role": "user", "content": "ping"}]
        ) as stream:
            assert "".join(stream.text_stream) == "echo: ping"
            assert stream.get_final_message().stop_reason == "end_turn"
        with pytest.raises(anthropic.RateLimitError) as err:
            api.messages.create(
                model="stub-error-429", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        assert err.value.response.headers["retry-after"] == "7"
        with pytest.raises(anthropic.BadRequestError, match="Extra inputs"):
            api.messages.create(
                model="stub-model",
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
                extra_body={"presence_penalty": 1},
            )


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_stream_chunks_arrive_as_produced(
    kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    """No buffering: the stub emits one chunk every 100 ms, and each reaches the client
    on its own, ~100 ms apart (passthrough and Anthropic translation alike)."""
    router = routers(kind)
    arrivals: list[float] = []
    with httpx.stream(
        "POST",
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={
            "model": "stub-slow",
            "stream": True,
            "messages": [{"role": "user", "content": "x" * 200}],
        },
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
            if len(arrivals) == 6:
                break
    gaps = [b - a for a, b in itertools.pairwise(arrivals[1:])]
    assert min(gaps) > 0.05, gaps  # not batched
    assert arrivals[-1] - arrivals[0] < 2.0  # and not held back until the end (5 s)
