"""The failure matrix on the Responses and Messages routes, and the overhead metric.

Provider answers of any status pass through verbatim; failures without an answer are the
router's own errors (503 unreachable, 504 timeout, 502 blocked/reset), shaped for the
route's SDK (OpenAI's on /v1/responses, Anthropic's on /v1/messages). There is never a
second upstream request, and a client that leaves cancels the upstream request. (That every
upstream call of these routes goes through the SSRF guard is shown without sending a
packet, in tests/unit/test_protocols_guard.py.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from router_harness import TOKEN, RouterProcess, StubServer, free_port, router_env

ASK = [{"role": "user", "content": "hello"}]
# (route, provider kind): pass-through and translated pairs of both APIs.
PAIRS = [
    ("responses", "openai"),
    ("responses", "azure"),
    ("responses", "managed"),
    ("responses", "anthropic"),
    ("messages", "anthropic"),
    ("messages", "openai"),
    ("messages", "azure"),
    ("messages", "managed"),
]
IDS = [f"{route}-{kind}" for route, kind in PAIRS]


def body(route: str, model: str, stream: bool = False) -> dict[str, Any]:
    if route == "responses":
        return {"model": model, "input": "hello", "stream": stream}
    return {"model": model, "max_tokens": 16, "messages": ASK, "stream": stream}


def headers(route: str) -> dict[str, str]:
    if route == "responses":
        return {"authorization": f"Bearer {TOKEN}"}
    return {"x-api-key": TOKEN, "anthropic-version": "2023-06-01"}


def post(router: RouterProcess, route: str, model: str, **kwargs: Any) -> httpx.Response:
    stream = kwargs.pop("stream", False)
    return httpx.post(
        f"{router.url}/v1/{route}",
        headers=headers(route),
        json=body(route, model, stream),
        timeout=kwargs.pop("timeout", 10),
    )


def upstream(stub: StubServer) -> list[dict[str, Any]]:
    return [e for e in stub.requests() if not str(e["path"]).startswith("/_stub")]


def assert_router_error(response: httpx.Response, route: str, status: int, code: str) -> None:
    """The router's own error in the route's shape."""
    assert response.status_code == status
    data = response.json()
    if route == "messages":
        assert data["type"] == "error"
        assert set(data["error"]) == {"type", "message"}
    else:
        assert data["error"]["code"] == code


def _direct(stub: StubServer, route: str, kind: str, model: str) -> httpx.Response:
    """What the provider itself answers to the (translated) request."""
    if kind == "anthropic":
        translated = {"model": model, "max_tokens": 16, "messages": ASK}
        return httpx.post(
            f"{stub.url}/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json=translated,
        )
    if kind == "azure":
        if route == "responses":
            url = f"{stub.url}/openai/responses?api-version=2025-04-01-preview"
            return httpx.post(url, headers={"api-key": "k"}, json=body(route, model))
        url = f"{stub.url}/openai/deployments/{model}/chat/completions?api-version=2024-10-21"
        return httpx.post(url, headers={"api-key": "k"}, json={"model": model, "messages": ASK})
    path = "/v1/responses" if route == "responses" else "/v1/chat/completions"
    payload = body(route, model) if route == "responses" else {"model": model, "messages": ASK}
    return httpx.post(f"{stub.url}{path}", headers={"authorization": "Bearer k"}, json=payload)


@pytest.mark.parametrize(("route", "kind"), PAIRS, ids=IDS)
@pytest.mark.parametrize("status", [404, 429, 500])
def test_provider_errors_verbatim_no_retry(
    route: str, kind: str, status: int, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    model = "stub-404" if status == 404 else f"stub-error-{status}"
    direct = _direct(stub, route, kind, model)
    assert direct.status_code == status
    stub.clear()
    response = post(router, route, model)
    assert response.status_code == status
    assert response.content == direct.content  # byte for byte, whatever the shape
    if status == 429:
        assert response.headers["retry-after"] == "7"
    assert len(upstream(stub)) == 1  # one attempt: no retry, no fallback


def test_sdks_raise_the_provider_error(routers: Callable[[str], RouterProcess]) -> None:
    with pytest.raises(openai.RateLimitError) as oerr:
        routers("openai").openai().responses.create(model="stub-error-429", input="x")
    assert oerr.value.code == "rate_limit_exceeded"
    claude = routers("anthropic").anthropic(api_key=TOKEN)
    with pytest.raises(anthropic.RateLimitError) as aerr:
        claude.messages.create(model="stub-error-429", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert aerr.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.fixture(scope="module")
def second_stub() -> Iterator[StubServer]:
    """Stands in for the platform's shared LiteLLM: a BYO router must never reach it."""
    server = StubServer()
    yield server
    server.stop()


@pytest.mark.parametrize(("route", "kind"), PAIRS, ids=IDS)
def test_unreachable_is_503_without_fallback(
    route: str,
    kind: str,
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
    second_stub: StubServer,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    if kind == "managed":
        env = router_env(kind, stub, BYOLLM_MANAGED_URL=f"{dead}/v1")
    else:
        env = router_env(kind, stub, LLM_BASE_URL=dead if kind == "azure" else f"{dead}/v1")
        env["BYOLLM_MANAGED_URL"] = f"{second_stub.url}/v1"  # present by mistake: unused
    response = post(start_router(env), route, "stub-model")
    assert_router_error(response, route, 503, "upstream_unreachable")
    assert second_stub.requests() == []


@pytest.mark.parametrize(("route", "kind"), PAIRS, ids=IDS)
def test_timeout_is_504_and_upstream_closed(
    route: str,
    kind: str,
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
) -> None:
    router = start_router(router_env(kind, stub, BYOLLM_UPSTREAM_TIMEOUT="0.5"))
    stub.clear()
    response = post(router, route, "stub-hang")
    assert_router_error(response, route, 504, "upstream_timeout")
    if route == "messages":
        assert response.json()["error"]["type"] == "timeout_error"
    log = stub.wait_for(lambda log: bool(log) and log[-1].get("outcome") == "disconnected")
    assert log[-1]["outcome"] == "disconnected"


@pytest.mark.parametrize(("route", "kind"), PAIRS, ids=IDS)
def test_client_disconnect_cancels_upstream(
    route: str, kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    stub.clear()
    with httpx.stream(
        "POST",
        f"{router.url}/v1/{route}",
        headers=headers(route),
        json=body(route, "stub-slow", stream=True),
        timeout=10,
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        got = [next(lines) for _ in range(4)]  # the first events arrive before the end
        assert any(line.startswith("data: ") for line in got)
    # 50 events x 100 ms = 5 s if the router kept reading; it must cut the upstream now.
    log = stub.wait_for(lambda log: bool(log) and log[-1].get("outcome") == "disconnected", 3)
    assert log[-1]["outcome"] == "disconnected"


@pytest.mark.parametrize(("route", "kind"), PAIRS, ids=IDS)
def test_reset_midstream_ends_with_an_error_event_the_sdk_raises(
    route: str, kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    router = routers(kind)
    received: list[Any] = []
    if route == "responses":
        events: Iterable[Any] = router.openai().responses.create(
            model="stub-reset-midstream", input="x", stream=True
        )
        expected: type[Exception] = openai.APIError
    else:
        claude = router.anthropic(api_key=TOKEN)
        events = claude.messages.create(
            model="stub-reset-midstream",
            max_tokens=5,
            messages=ASK,  # type: ignore[arg-type]
            stream=True,
        )
        expected = anthropic.APIStatusError
    with pytest.raises(expected, match="failed during the response"):
        received.extend(events)
    assert received  # events before the reset were delivered as they came


def test_responses_item_routes_follow_the_matrix(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> None:
    dead = start_router(
        router_env("openai", stub, LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    )
    got = httpx.get(f"{dead.url}/v1/responses/resp_1", headers=headers("responses"))
    assert_router_error(got, "responses", 503, "upstream_unreachable")
    live = start_router(router_env("openai", stub))
    bad = httpx.get(f"{live.url}/v1/responses/..%2f..%2fadmin", headers=headers("responses"))
    assert bad.status_code == 404  # an id is one path segment, never a path
    put = httpx.put(f"{live.url}/v1/responses/resp_1", headers=headers("responses"))
    assert put.status_code == 405


# --- overhead: metric and header ----------------------------------------------------------------

_BUCKET = re.compile(
    r"byollm_router_overhead_seconds_count"
    r'\{provider="(?P<provider>[^"]+)",route="(?P<route>[^"]+)"\} (?P<n>[0-9.]+)'
)


@pytest.mark.parametrize(("route", "kind"), PAIRS, ids=IDS)
def test_overhead_header_and_metric(
    route: str, kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    router = routers(kind)
    provider = "managed" if kind == "managed" else kind
    for stream in (False, True):
        response = post(router, route, "stub-model", stream=stream)
        assert response.status_code == 200
        added = float(response.headers["x-byollm-overhead-ms"])
        assert 0 <= added < 1000
    text = httpx.get(f"{router.url}/metrics").text
    counts = {(m["route"], m["provider"]): float(m["n"]) for m in _BUCKET.finditer(text)}
    assert counts[(route, provider)] >= 2
    # metadata only: labels are the route and provider, nothing from the request
    assert "stub-model" not in "".join(x for x in text.splitlines() if "overhead" in x)
