"""A canary prompt and a canary key go through the router; neither may surface anywhere
the platform can see: any router log line, the /metrics output, or an error body the router
itself produces (the platform never sees prompts or completions)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from router_harness import ROUTER_BIN, RouterProcess, StubServer, free_port, router_env

CANARY_PROMPT = "CANARY-PROMPT-7f3a9c-do-not-log"
CANARY_KEY = "sk-CANARY-KEY-51e0d2-never-print"
CANARY_FIELD = "CANARY-FIELD-0b77"


@pytest.fixture(scope="module")
def canary_router(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> RouterProcess:
    return start_router(
        router_env("openai", stub, LLM_API_KEY=CANARY_KEY, BYOLLM_TENANT="tenant-canary")
    )


def test_canary_never_in_logs_metrics_or_router_errors(
    canary_router: RouterProcess,
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
) -> None:
    router = canary_router
    api = router.openai()
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": CANARY_PROMPT}]
    reply = api.chat.completions.create(model="stub-model", messages=messages)
    assert CANARY_PROMPT in (reply.choices[0].message.content or "")  # the completion echoes it
    assert "".join(
        c.choices[0].delta.content or ""
        for c in api.chat.completions.create(
            model="stub-model",
            messages=messages,
            stream=True,
        )
        if c.choices
    ).endswith(CANARY_PROMPT)
    api.embeddings.create(model="stub-embed", input=CANARY_PROMPT)
    api.chat.completions.create(
        model="stub-model",
        messages=messages,
        tools=[{"type": "function", "function": {"name": CANARY_FIELD, "parameters": {}}}],
    )

    router_errors: list[httpx.Response] = []
    url = f"{router.base_url}/chat/completions"
    for model in ("stub-error-400", "stub-error-429", "stub-reset", "stub-reset-midstream"):
        router_errors.append(
            httpx.post(
                url,
                headers=router.headers,
                json={"model": model, "messages": messages, "stream": model.endswith("midstream")},
            )
        )
    # Router-made errors with the canary in the request: bad JSON, wrong type, bad token,
    # too large, and the key's owner unreachable.
    router_errors += [
        httpx.post(url, headers=router.headers, content=f'{{"x": "{CANARY_PROMPT}'.encode()),
        httpx.post(url, headers=router.headers, json={"model": [CANARY_PROMPT]}),
        httpx.post(url, headers={"authorization": f"Bearer {CANARY_KEY}"}, json={}),
        httpx.post(
            url,
            headers=router.headers,
            json={"model": "m", "messages": [{"role": "user", "content": CANARY_PROMPT * 400_000}]},
        ),
    ]
    dead = start_router(
        router_env(
            "openai",
            stub,
            LLM_API_KEY=CANARY_KEY,
            LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
        )
    )
    router_errors.append(
        httpx.post(
            f"{dead.base_url}/chat/completions",
            headers=dead.headers,
            json={"model": "m", "messages": messages},
        )
    )
    own_errors = [r for r in router_errors if r.status_code >= 400]
    assert {r.status_code for r in own_errors} >= {400, 401, 413, 429, 502, 503}
    for response in own_errors:
        assert CANARY_PROMPT not in response.text
        assert CANARY_KEY not in response.text

    for r in (router, dead):
        metrics = httpx.get(f"{r.url}/metrics").text
        assert CANARY_PROMPT not in metrics
        assert CANARY_KEY not in metrics
        assert CANARY_FIELD not in metrics
        log = r.log_text()
        assert CANARY_PROMPT not in log
        assert CANARY_KEY not in log
        assert CANARY_FIELD not in log

    # Every log line is one JSON object; request lines carry exactly the metadata fields.
    request_lines = []
    for line in router.log_lines():
        record = json.loads(line)
        assert {"time", "level", "msg"} <= set(record)
        if record["msg"] == "request":
            request_lines.append(record)
    assert len(request_lines) >= 10
    allowed = {
        "time", "level", "logger", "msg", "tenant", "route", "method", "status",
        "latency_ms", "category", "upstream_status", "error", "stream",
    }  # fmt: skip
    for record in request_lines:
        assert set(record) <= allowed
        assert record["tenant"] == "tenant-canary"
        assert isinstance(record["latency_ms"], float | int)


def test_config_error_never_prints_the_key(stub: StubServer) -> None:
    """A start-up failure names the variable, not its value."""
    env = router_env("openai", stub, LLM_API_KEY=CANARY_KEY, LLM_PROVIDER="bogus")
    proc = subprocess.run(
        [str(ROUTER_BIN), "--port", "1"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    assert CANARY_KEY not in proc.stdout + proc.stderr


def test_openai_sdk_error_for_bad_key_is_providers(canary_router: RouterProcess) -> None:
    """Sanity: the SDK sees the provider's error object, not a router rewrite."""
    with pytest.raises(openai.BadRequestError) as err:
        canary_router.openai().chat.completions.create(
            model="stub-error-400", messages=[{"role": "user", "content": "x"}]
        )
    assert "stub-injected 400" in err.value.message
