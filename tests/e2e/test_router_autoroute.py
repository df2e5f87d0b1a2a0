"""The auto-router wired into a real router: model "auto" (or absent with routing.auto)
is classified through the tenant's OWN upstream, and the choice is visible in headers,
metrics and the log line (category only — never the classifier prompt or answer)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from router_harness import RouterProcess, StubServer, router_env

ROUTING = {
    "auto": True,
    "models": {
        "fast": "stub-classify-code",  # the classifier model answers "code"
        "code": "stub-code-model",
        "vision": "stub-vision-model",
        "balanced": "stub-balanced-model",
    },
}
PROMPT = "AUTOROUTE-CANARY please refactor this function"


def auto_router(
    kind: str,
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
    routing: dict[str, object] = ROUTING,
) -> RouterProcess:
    return start_router(router_env(kind, stub, LLM_ROUTING=json.dumps(routing)))


def upstream_models(stub: StubServer) -> list[str]:
    out = []
    for entry in stub.requests():
        model = entry.get("model") or entry.get("deployment")
        out.append(str(model))
    return out


@pytest.mark.parametrize("kind", ["openai", "anthropic", "managed", "azure"])
@pytest.mark.parametrize("model", ["auto", None])
def test_classifier_goes_to_the_same_upstream(
    kind: str,
    model: str | None,
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
) -> None:
    router = auto_router(kind, start_router, stub)
    stub.clear()
    body: dict[str, object] = {"messages": [{"role": "user", "content": PROMPT}]}
    if model:
        body["model"] = model
    response = httpx.post(f"{router.base_url}/chat/completions", headers=router.headers, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-byollm-category"] == "code"
    assert response.headers["x-byollm-model"] == "stub-code-model"
    assert upstream_models(stub) == ["stub-classify-code", "stub-code-model"]
    log = stub.requests()
    assert {e["api_key"] for e in log} == {log[-1]["api_key"]}  # same credential, same upstream


def test_rule_path_and_streaming_headers(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> None:
    router = auto_router("openai", start_router, stub)
    stub.clear()
    image = {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}
    body = {
        "model": "auto",
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}],
    }
    with httpx.stream(
        "POST", f"{router.base_url}/chat/completions", headers=router.headers, json=body
    ) as response:
        assert response.headers["x-byollm-category"] == "vision"
        assert response.headers["x-byollm-model"] == "stub-vision-model"
        assert response.read().endswith(b"data: [DONE]\n\n")
    assert upstream_models(stub) == ["stub-vision-model"]  # rules: no classifier call


def test_classifier_failure_falls_back_to_balanced(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> None:
    routing = {"auto": False, "models": {**ROUTING["models"], "fast": "stub-error-500"}}  # type: ignore[dict-item]
    router = auto_router("openai", start_router, stub, routing)
    stub.clear()
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "auto", "messages": [{"role": "user", "content": PROMPT}]},
    )
    assert response.status_code == 200
    assert response.headers["x-byollm-category"] == "balanced"
    assert upstream_models(stub) == ["stub-error-500", "stub-balanced-model"]
    # auto: false and no model → plain default model, no auto-routing
    stub.clear()
    plain = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"messages": [{"role": "user", "content": "x"}]},
    )
    assert "x-byollm-category" not in plain.headers
    assert upstream_models(stub) == ["stub-model"]


def test_category_in_metrics_and_log_but_no_prompt(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> None:
    router = auto_router("openai", start_router, stub)
    httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "auto", "messages": [{"role": "user", "content": PROMPT}]},
    )
    metrics = httpx.get(f"{router.url}/metrics").text
    assert 'byollm_router_autoroute_total{category="code"}' in metrics
    records = [json.loads(line) for line in router.log_lines()]
    assert any(r.get("category") == "code" for r in records)
    assert "AUTOROUTE-CANARY" not in router.log_text()
    assert "AUTOROUTE-CANARY" not in metrics
