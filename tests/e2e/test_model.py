"""The router in front of a real model: SmolLM2-135M-Instruct on llama-cpp-python's
OpenAI-compatible server (``hack/model.sh``), driven with the official ``openai`` SDK.

What a stub cannot show: a real server's answers, streaming, token usage and context
window, and its own errors -- which must reach the client verbatim (status, type, code,
message), since the router adds nothing to a provider's refusal. The 135M model is weak;
these tests assert the plumbing and the auto-router's contract, never answer quality.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from router_harness import TOKEN, RouterProcess
from test_dev import start_dev

from byollm_dev.localmodel import CONTEXT_TOKENS, LOCAL_MODEL, ModelServer
from byollm_router.autoroute import classifier_messages, classifier_request_body, parse_category
from byollm_router.contract import Category

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]

CATEGORIES = {c.value for c in Category}


def model_env(server: ModelServer, **extra: str) -> dict[str, str]:
    """What the operator writes for a ``custom`` provider at this server (in a cluster it
    would be a Service name; the allowlist admits loopback here)."""
    return {
        "BYOLLM_ROUTER_TOKEN": TOKEN,
        "BYOLLM_TENANT": "tenant-local-model",
        "BYOLLM_UPSTREAM_ALLOWLIST": "127.0.0.1",
        "BYOLLM_UPSTREAM_TIMEOUT": "60",
        "LLM_PROVIDER": "custom",
        "LLM_BASE_URL": server.url,
        "LLM_API_KEY": "sk-local-model-not-checked",
        "LLM_MODEL": LOCAL_MODEL,
        **extra,
    }


@pytest.fixture
def router(
    local_model: ModelServer, start_router: Callable[[dict[str, str]], RouterProcess]
) -> RouterProcess:
    return start_router(model_env(local_model))


@pytest.fixture
def auto_router(
    local_model: ModelServer, start_router: Callable[[dict[str, str]], RouterProcess]
) -> RouterProcess:
    routing = {"auto": True, "models": {"fast": LOCAL_MODEL, "code": LOCAL_MODEL}}
    # A generous classifier budget: a loaded CI machine decodes slowly.
    env = model_env(local_model, LLM_ROUTING=json.dumps(routing), BYOLLM_AUTOROUTE_TIMEOUT="30")
    return start_router(env)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# --- what works -----------------------------------------------------------------------


def test_chat_answers_with_usage(router: RouterProcess) -> None:
    reply = router.openai().chat.completions.create(
        model=LOCAL_MODEL, messages=ask("Name one colour."), max_tokens=16, temperature=0
    )
    assert reply.model == LOCAL_MODEL
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 16


def test_default_model_is_filled_in(router: RouterProcess) -> None:
    reply = router.openai().chat.completions.create(
        model="", messages=ask("Say yes."), max_tokens=4
    )
    assert reply.choices[0].message.content is not None


def test_streaming_delivers_the_answer_in_chunks(router: RouterProcess) -> None:
    stream = router.openai().chat.completions.create(
        model=LOCAL_MODEL,
        messages=ask("Count from one to five in words."),
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_auto_model_classified_by_the_real_model(auto_router: RouterProcess) -> None:
    """The classifier call goes to the real model; whatever it answers, the request is
    served and labelled with one of the six categories."""
    raw = auto_router.openai().chat.completions.with_raw_response.create(
        model="auto", messages=ask("What should I write in a card for a colleague?"), max_tokens=8
    )
    assert raw.headers["x-byollm-category"] in CATEGORIES
    assert raw.headers["x-byollm-model"] == LOCAL_MODEL  # every category falls back to it
    assert raw.parse().choices[0].message.content is not None


def test_auto_model_rule_needs_no_classifier(auto_router: RouterProcess) -> None:
    raw = auto_router.openai().chat.completions.with_raw_response.create(
        model="auto", messages=ask("Why does this fail?\n```py\nprint(1/0)\n```"), max_tokens=8
    )
    assert raw.headers["x-byollm-category"] == "code"
    assert raw.parse().choices[0].message.content is not None


# --- where a real server differs from the stub: its errors reach the client verbatim ------


def test_context_overflow_is_the_servers_400(router: RouterProcess) -> None:
    too_long = "word " * (CONTEXT_TOKENS * 2)
    with pytest.raises(openai.BadRequestError) as err:
        router.openai().chat.completions.create(
            model=LOCAL_MODEL, messages=ask(too_long), max_tokens=8
        )
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict)
    assert body["code"] == "context_length_exceeded"
    assert body["type"] == "invalid_request_error"
    assert f"maximum context length is {CONTEXT_TOKENS} tokens" in body["message"]


@pytest.mark.parametrize(
    ("extra", "server_says"),
    [
        # llama-cpp-python validates with pydantic and answers 500 with the validation text.
        ({"extra_body": {"temperature": "hot"}}, "unable to parse string as a number"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "Input should be 'text' or 'json_object'",
        ),
        ({"logit_bias": {"not-a-token-id": 1}}, "invalid literal for int()"),
    ],
)
def test_bad_parameters_get_the_servers_own_error(
    router: RouterProcess, extra: dict[str, Any], server_says: str
) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        router.openai().chat.completions.create(
            model=LOCAL_MODEL, messages=ask("hi"), max_tokens=4, **extra
        )
    assert err.value.status_code == 500  # the server's status, not one of the router's
    body = err.value.body
    assert isinstance(body, dict)
    assert server_says in body["message"]
    assert body["type"] == "internal_server_error"


def test_constrained_classifier_output_on_a_real_server(local_model: ModelServer) -> None:
    """BYOLLM_AUTOROUTE_CONSTRAINED=json_object is the form llama-cpp-python speaks: its
    grammar forces a category even from a 135M model; the json_schema form (OpenAI's) is
    refused by this server, which is why the form is the tenant's choice."""
    prompt = classifier_messages({"messages": ask("Plan a week of team lunches.")})
    with httpx.Client(base_url=local_model.url, timeout=60) as http:
        resp = http.post(
            "/chat/completions",
            json=classifier_request_body(prompt, LOCAL_MODEL, constrained="json_object"),
        )
        resp.raise_for_status()
        answer = resp.json()["choices"][0]["message"]["content"]
        assert json.loads(answer)["category"] in CATEGORIES
        assert parse_category(answer) is not None
        refused = http.post(
            "/chat/completions",
            json=classifier_request_body(prompt, LOCAL_MODEL, constrained="json_schema"),
        )
        assert refused.status_code >= 400


# --- byollm dev serves it -------------------------------------------------------------------


@pytest.mark.cluster
def test_dev_answers_with_the_local_model_by_default(
    local_model: ModelServer, tmp_path: Path
) -> None:
    """A new user's first run: byollm dev starts its own model server (the fixture only
    makes sure one can be built here, else this skips with the others)."""
    gen = start_dev(tmp_path, "--upstream", "model")
    info = next(gen)
    try:
        assert info["model"] == LOCAL_MODEL
        assert info["upstream"].startswith(f"http://model.{info['namespace']}.svc:")
        answer = info["firstAnswer"]
        assert answer
        assert not answer.startswith(("echo:", "(no answer"))
        out = info["log"].read_text()
        assert f"It already answered, from {LOCAL_MODEL} through that router" in out
        with openai.OpenAI(base_url=info["endpoint"], api_key=info["token"], max_retries=0) as chat:
            reply = chat.chat.completions.create(model="", messages=ask("hi"), max_tokens=8)
        assert reply.model == LOCAL_MODEL
        info["proc"].send_signal(signal.SIGINT)
        assert info["proc"].wait(60) == 0
    finally:
        gen.close()
