"""The auto-router through a real router process, with the official OpenAI SDK as client.

Two stub providers run as processes: ``tenant`` (the tenant's own provider in BYO) and
``shared`` (the platform's shared LiteLLM in Managed). Each records which model every
request reached, so the tests can assert where the classifier call went -- and that the
other stub saw nothing. The stub answers a request for model ``stub-classify-WORD`` with
exactly WORD, ``stub-hang`` never answers and ``stub-error-500`` fails: that drives the
classifier path, timeout, garbage and error cases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from router_harness import RouterProcess, StubServer, recording_stub, router_env

from byollm_router.autoroute import CLASSIFIER_SYSTEM_PROMPT

IMAGE = (  # a 1x1 PNG
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CANARY_PROMPT = "zebra-canary-prompt-5521"
# A request no text rule decides (a bare "hello" is ruled fast): the classifier is asked.
NEUTRAL = "what is on the agenda today?"

TABLE = {
    "fast": "stub-classify-code",
    "balanced": "stub-balanced",
    "reasoning": "stub-reasoning",
    "longContext": "stub-long",
    "vision": "stub-vision",
    "code": "stub-code",
}


@pytest.fixture(scope="module")
def tenant() -> Iterator[StubServer]:
    yield from recording_stub()


@pytest.fixture(scope="module")
def shared() -> Iterator[StubServer]:
    yield from recording_stub()


@pytest.fixture
def stubs(tenant: StubServer, shared: StubServer) -> tuple[StubServer, StubServer]:
    tenant.clear()
    shared.clear()
    return tenant, shared


RouterFor = Callable[..., RouterProcess]


@pytest.fixture
def byo(
    stubs: tuple[StubServer, StubServer], start_router: Callable[[dict[str, str]], RouterProcess]
) -> RouterFor:
    """``byo(table, **env)``: a BYO router on the tenant stub with that routing table.

    The shared LiteLLM's URL is set too, as a trap: a BYO router must never use it."""
    tenant, shared = stubs

    def make(table: dict[str, str], auto: bool = True, **extra: str) -> RouterProcess:
        routing = json.dumps({"auto": auto, "models": table})
        env = router_env(
            "openrouter",
            tenant,
            LLM_MODE="BYO",
            LLM_ROUTING=routing,
            BYOLLM_MANAGED_URL=f"{shared.url}/v1",
            **extra,
        )
        return start_router(env)

    return make


def upstream(stub: StubServer) -> list[dict[str, Any]]:
    return [e for e in stub.requests() if not e["path"].startswith("/_stub")]


def models(stub: StubServer) -> list[str | None]:
    return [e.get("model") for e in upstream(stub)]


def chat(router: RouterProcess, messages: list[dict[str, Any]], **kw: Any) -> Any:
    """A chat call through the SDK, returning the raw response (headers + parsed body)."""
    args: dict[str, Any] = {"model": "auto", "messages": messages, **kw}
    return router.openai().chat.completions.with_raw_response.create(**args)


def chat_without_model(router: RouterProcess, messages: list[dict[str, Any]]) -> httpx.Response:
    """The SDK insists on a model; agents on plain HTTP may omit it."""
    url = f"{router.base_url}/chat/completions"
    resp = httpx.post(url, json={"messages": messages}, headers=router.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# --- rules: no classifier call ------------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": IMAGE}},
        {"type": "input_image", "image_url": IMAGE},
    ],
)
def test_image_goes_to_vision_model_without_classifier(
    byo: RouterFor, stubs: tuple[StubServer, StubServer], part: dict[str, Any]
) -> None:
    tenant, shared = stubs
    raw = chat(byo(TABLE), user([{"type": "text", "text": "what is this?"}, part]))
    assert raw.headers["x-byollm-category"] == "vision"
    assert raw.headers["x-byollm-model"] == "stub-vision"
    assert raw.parse().model == "stub-vision"
    assert models(tenant) == ["stub-vision"]  # one request: the rule made no upstream call
    assert upstream(shared) == []


def test_long_input_goes_to_long_context_model_without_classifier(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, shared = stubs
    text = "line of a very long server log 200 OK\n" * 4000  # ~152k chars, ~38k tokens
    raw = chat(byo(TABLE), user(text))
    assert raw.headers["x-byollm-category"] == "longContext"
    assert raw.headers["x-byollm-model"] == "stub-long"
    assert models(tenant) == ["stub-long"]
    assert upstream(shared) == []


def test_long_context_threshold_is_configurable(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    text = "a short log line\n" * 40  # ~680 chars, ~170 tokens: under the default 32k
    raw = chat(byo(TABLE, BYOLLM_AUTOROUTE_LONG_CONTEXT_TOKENS="100"), user(text))
    assert raw.headers["x-byollm-category"] == "longContext"
    assert models(tenant) == ["stub-long"]  # the rule decided: no classifier call


# --- the classifier path ------------------------------------------------------------


def test_classifier_picks_category_via_fast_model_on_tenant_upstream(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, shared = stubs
    router = byo(TABLE)
    raw = chat(router, user(f"fix this python traceback {CANARY_PROMPT}"))
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.headers["x-byollm-model"] == "stub-code"
    assert raw.parse().choices[0].message.content.startswith("echo: fix this python")

    classifier, final = upstream(tenant)
    assert classifier["model"] == "stub-classify-code"
    assert classifier["stream"] is False
    assert classifier["path"] == "/v1/chat/completions"
    assert classifier["api_key"] == "sk-openrouter-test-key-000"  # the tenant's own key
    sent = classifier["body"]["messages"]
    assert sent[0] == {"role": "system", "content": CLASSIFIER_SYSTEM_PROMPT}
    assert CANARY_PROMPT in sent[1]["content"]
    assert final["model"] == "stub-code"
    assert upstream(shared) == []  # the shared LiteLLM saw nothing, not even the classifier

    metrics = httpx.get(f"{router.url}/metrics").text
    assert 'byollm_router_autoroute_total{category="code"}' in metrics
    # Neither the classifier prompt nor the request's text reaches the router's logs.
    time.sleep(0.2)
    assert CANARY_PROMPT not in router.log_text()


def test_no_model_is_auto_routed_when_table_says_auto(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    raw = chat_without_model(byo(TABLE), user("refactor this function"))
    assert raw.headers["x-byollm-category"] == "code"
    assert models(tenant) == ["stub-classify-code", "stub-code"]


def test_no_model_uses_default_model_when_auto_is_off(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    raw = chat_without_model(byo(TABLE, auto=False), user(NEUTRAL))
    assert "x-byollm-category" not in raw.headers
    assert models(tenant) == ["stub-model"]


def test_fixed_model_is_not_auto_routed(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    raw = chat(byo(TABLE), user([{"type": "image_url", "image_url": {"url": IMAGE}}]), model="m1")
    assert "x-byollm-category" not in raw.headers
    assert models(tenant) == ["m1"]


def test_streaming_with_auto(byo: RouterFor, stubs: tuple[StubServer, StubServer]) -> None:
    tenant, _ = stubs
    router = byo(TABLE)
    raw = chat(router, user("write a bash loop"), stream=True)
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.headers["x-byollm-model"] == "stub-code"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: write a bash loop"
    classifier, final = upstream(tenant)
    assert (classifier["model"], classifier["stream"]) == ("stub-classify-code", False)
    assert (final["model"], final["stream"]) == ("stub-code", True)

    # and a rule-routed stream
    tenant.clear()
    raw = chat(router, user([{"type": "image_url", "image_url": {"url": IMAGE}}]), stream=True)
    assert raw.headers["x-byollm-category"] == "vision"
    assert len(list(raw.parse())) > 0
    assert [(e["model"], e["stream"]) for e in upstream(tenant)] == [("stub-vision", True)]


# --- failures of the classifier -> balanced -----------------------------------------


def test_classifier_timeout_is_balanced(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    router = byo(TABLE | {"fast": "stub-hang"}, BYOLLM_AUTOROUTE_TIMEOUT="0.3")
    start = time.monotonic()
    raw = chat(router, user(NEUTRAL))
    elapsed = time.monotonic() - start
    assert raw.headers["x-byollm-category"] == "balanced"
    assert raw.headers["x-byollm-model"] == "stub-balanced"
    assert elapsed < 3, elapsed  # the 0.3 s budget, not the upstream timeout (5 s)
    assert models(tenant) == ["stub-hang", "stub-balanced"]


def test_classifier_garbage_is_balanced(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    router = byo(TABLE | {"fast": "stub-classify-zqxgarbageanswer"})
    raw = chat(router, user(NEUTRAL))
    assert raw.headers["x-byollm-category"] == "balanced"
    assert raw.headers["x-byollm-model"] == "stub-balanced"
    assert models(tenant) == ["stub-classify-zqxgarbageanswer", "stub-balanced"]
    time.sleep(0.2)
    log = router.log_text()
    assert "zqxgarbageanswer" not in log  # the classifier's answer is never logged


def test_classifier_error_is_balanced(byo: RouterFor, stubs: tuple[StubServer, StubServer]) -> None:
    tenant, _ = stubs
    raw = chat(byo(TABLE | {"fast": "stub-error-500"}), user(NEUTRAL))
    assert raw.headers["x-byollm-category"] == "balanced"
    assert models(tenant) == ["stub-error-500", "stub-balanced"]


# --- missing category models -> default model ---------------------------------------


def test_missing_category_model_uses_default_model(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    router = byo({"fast": "stub-classify-reasoning"})
    raw = chat(router, user("is sqrt(2) rational?"))
    assert raw.headers["x-byollm-category"] == "reasoning"
    assert raw.headers["x-byollm-model"] == "stub-model"  # LLM_MODEL
    assert models(tenant) == ["stub-classify-reasoning", "stub-model"]

    tenant.clear()
    raw = chat(router, user([{"type": "image_url", "image_url": {"url": IMAGE}}]))
    assert raw.headers["x-byollm-category"] == "vision"
    assert models(tenant) == ["stub-model"]


def test_empty_table_classifies_with_default_model(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    tenant, _ = stubs
    raw = chat(byo({}), user(NEUTRAL))
    # The default model (stub-model) classified; its echo is garbage -> balanced -> default.
    assert raw.headers["x-byollm-category"] == "balanced"
    assert raw.headers["x-byollm-model"] == "stub-model"
    assert models(tenant) == ["stub-model", "stub-model"]


# --- Managed: the classifier goes to the shared LiteLLM, nowhere else --------------


def test_managed_classifier_goes_to_shared_litellm_only(
    stubs: tuple[StubServer, StubServer],
    start_router: Callable[[dict[str, str]], RouterProcess],
) -> None:
    tenant, shared = stubs
    env = router_env(
        "managed",
        shared,
        LLM_ROUTING=json.dumps({"auto": True, "models": TABLE}),
        # Stale BYO keys pointing at the tenant's provider, as a trap: Managed ignores them.
        LLM_PROVIDER="openai",
        LLM_BASE_URL=f"{tenant.url}/v1",
        LLM_API_KEY="sk-stale-tenant-key",
    )
    router = start_router(env)
    raw = chat(router, user("write a SQL query"))
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.headers["x-byollm-model"] == "stub-code"
    classifier, final = upstream(shared)
    assert classifier["model"] == "stub-classify-code"
    assert classifier["api_key"] == "sk-litellm-virtual-key-tenant"
    assert final["model"] == "stub-code"
    assert upstream(tenant) == []

    shared.clear()
    raw = chat(router, user([{"type": "image_url", "image_url": {"url": IMAGE}}]))
    assert raw.headers["x-byollm-category"] == "vision"
    assert models(shared) == ["stub-vision"]
    assert upstream(tenant) == []


def test_sdk_error_passthrough_still_carries_category(
    byo: RouterFor, stubs: tuple[StubServer, StubServer]
) -> None:
    """A failing category model: the provider's error passes through, no fallback."""
    tenant, _ = stubs
    router = byo(TABLE | {"code": "stub-error-429"})
    with pytest.raises(openai.RateLimitError) as err:
        chat(router, user("write a function"))
    assert err.value.response.headers.get("x-byollm-category") == "code"
    assert models(tenant) == ["stub-classify-code", "stub-error-429"]


# --- other wire formats: the classifier speaks the tenant's provider's own format --------


def test_azure_classifier_uses_deployments(
    stubs: tuple[StubServer, StubServer],
    start_router: Callable[[dict[str, str]], RouterProcess],
) -> None:
    tenant, shared = stubs
    routing = json.dumps({"auto": True, "models": TABLE})
    router = start_router(router_env("azure", tenant, LLM_ROUTING=routing))
    raw = chat(router, user("write a SQL query"))
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.headers["x-byollm-model"] == "stub-code"
    paths = [e["path"] for e in upstream(tenant)]
    assert paths == [
        "/openai/deployments/stub-classify-code/chat/completions",
        "/openai/deployments/stub-code/chat/completions",
    ]
    assert upstream(shared) == []


def test_anthropic_classifier_uses_messages_api(
    stubs: tuple[StubServer, StubServer],
    start_router: Callable[[dict[str, str]], RouterProcess],
) -> None:
    tenant, shared = stubs
    table = TABLE | {"fast": "stub-fast"}
    routing = json.dumps({"auto": True, "models": table})
    router = start_router(router_env("anthropic", tenant, LLM_ROUTING=routing))
    raw = chat(router, user(NEUTRAL))
    # The Anthropic stub echoes the prompt, which names no single category: garbage.
    assert raw.headers["x-byollm-category"] == "balanced"
    log = upstream(tenant)
    assert [(e["path"], e["model"]) for e in log] == [
        ("/v1/messages", "stub-fast"),
        ("/v1/messages", "stub-balanced"),
    ]
    assert upstream(shared) == []


def test_managed_missing_category_model_uses_balanced(
    stubs: tuple[StubServer, StubServer],
    start_router: Callable[[dict[str, str]], RouterProcess],
) -> None:
    """Managed routers have no LLM_MODEL: the table's balanced model stands in."""
    tenant, shared = stubs
    table = {"fast": "stub-classify-reasoning", "balanced": "stub-balanced"}
    routing = json.dumps({"auto": True, "models": table})
    router = start_router(router_env("managed", shared, LLM_ROUTING=routing))
    raw = chat(router, user("is that right?"))
    assert raw.headers["x-byollm-category"] == "reasoning"
    assert raw.headers["x-byollm-model"] == "stub-balanced"
    assert models(shared) == ["stub-classify-reasoning", "stub-balanced"]
    assert upstream(tenant) == []


# --- Managed: requests without a model, or "auto", get the platform's model --------------


def test_managed_model_less_and_auto_use_the_platforms_default(
    stubs: tuple[StubServer, StubServer],
    start_router: Callable[[dict[str, str]], RouterProcess],
) -> None:
    """An agent that omits ``model`` or says ``auto`` keeps working when its tenant is
    switched to Managed: the platform's default model (BYOLLM_MANAGED_MODEL) is sent to the
    shared LiteLLM, which refuses a request without a model."""
    tenant, shared = stubs
    router = start_router(router_env("managed", shared, BYOLLM_MANAGED_MODEL="platform-default"))
    resp = chat_without_model(router, user(NEUTRAL))
    assert resp.json()["model"] == "platform-default"
    raw = chat(router, user(NEUTRAL))  # model "auto" through the official SDK
    assert raw.status_code == 200
    assert raw.parse().model == "platform-default"
    assert raw.headers["x-byollm-model"] == "platform-default"
    assert models(shared) == ["platform-default", "platform-default", "platform-default"]
    assert upstream(tenant) == []
    # A named model is passed through untouched.
    shared.clear()
    assert chat(router, user("hi"), model="gpt-4o").parse().model == "gpt-4o"
    assert models(shared) == ["gpt-4o"]


def test_managed_auto_uses_the_platforms_category_table(
    stubs: tuple[StubServer, StubServer],
    start_router: Callable[[dict[str, str]], RouterProcess],
) -> None:
    tenant, shared = stubs
    table = {"fast": "stub-classify-code", "code": "platform-code"}
    router = start_router(
        router_env(
            "managed",
            shared,
            BYOLLM_MANAGED_MODEL="platform-default",
            LLM_ROUTING=json.dumps({"auto": False, "models": table}),
        )
    )
    raw = chat(router, user("write a SQL query"))
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.parse().model == "platform-code"
    # Without a model (and auto off) the platform's default, no classifier call.
    shared.clear()
    assert chat_without_model(router, user("write a SQL query")).json()["model"] == (
        "platform-default"
    )
    assert models(shared) == ["platform-default"]
    assert upstream(tenant) == []
