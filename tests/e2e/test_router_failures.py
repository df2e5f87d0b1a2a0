"""The failure matrix (provider errors verbatim, 503/504, no fallback), one test per row,
over real sockets.

Provider answers (any status) reach the client verbatim: same status, same body bytes,
Retry-After included. Failures without an answer become OpenAI-shaped router errors:
unreachable → 503, timeout → 504, reset → 502 (or an error event mid-stream). There is
never a second upstream request — no retry, no fallback to managed or anywhere else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from router_harness import RouterProcess, StubServer, free_port, router_env

MESSAGES = [{"role": "user", "content": "hello"}]


def client(router: RouterProcess) -> openai.OpenAI:
    return router.openai()


def upstream_entries(stub: StubServer) -> list[dict[str, object]]:
    return [e for e in stub.requests() if not str(e["path"]).startswith("/_stub")]


def assert_openai_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


# --- provider errors pass through verbatim ---------------------------------------------

PASSTHROUGH_ROWS = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError),
    (422, openai.UnprocessableEntityError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (503, openai.InternalServerError),
]


@pytest.mark.parametrize(
    ("status", "exc_type"), PASSTHROUGH_ROWS, ids=[str(r[0]) for r in PASSTHROUGH_ROWS]
)
def test_provider_error_passes_through_verbatim(
    status: int,
    exc_type: type[openai.APIStatusError],
    routers: Callable[[str], RouterProcess],
    stub: StubServer,
) -> None:
    router = routers("openai")
    model = "stub-404" if status == 404 else f"stub-error-{status}"
    body = {"model": model, "messages": MESSAGES}
    direct = httpx.post(
        f"{stub.url}/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}
    )
    stub.clear()
    with pytest.raises(exc_type) as err:
        client(router).chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    response = err.value.response
    assert response.status_code == status
    assert response.content == direct.content  # byte for byte
    if status == 404:
        assert err.value.code == "model_not_found"
    if status == 429:
        assert response.headers["retry-after"] == "7"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream_entries(stub)) == 1  # one attempt: no retry, no fallback


@pytest.mark.parametrize("kind", ["azure", "anthropic"])
def test_429_retry_after_reaches_client_for_native_formats(
    kind: str, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers(kind)
    with pytest.raises(openai.RateLimitError) as err:
        client(router).chat.completions.create(model="stub-error-429", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.response.headers["retry-after"] == "7"
    if kind == "anthropic":  # Anthropic's own error shape, untranslated
        assert err.value.response.json()["error"]["type"] == "rate_limit_error"


def test_streaming_request_gets_provider_error_verbatim(
    routers: Callable[[str], RouterProcess],
) -> None:
    router = routers("openai")
    with pytest.raises(openai.RateLimitError) as err:
        client(router).chat.completions.create(
            model="stub-error-429",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        )
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.code == "rate_limit_exceeded"


# --- failures without a provider answer ----------------------------------------------------


@pytest.fixture(scope="module")
def second_stub() -> Iterator[StubServer]:
    """Stands in for the platform's shared LiteLLM: a BYO router must never reach it."""
    server = StubServer()
    yield server
    server.stop()


def test_unreachable_provider_is_503_without_fallback(
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
    second_stub: StubServer,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = router_env("openai", stub, LLM_BASE_URL=dead)
    env["BYOLLM_MANAGED_URL"] = f"{second_stub.url}/v1"  # present by mistake: still unused
    router = start_router(env)
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "stub-model", "messages": MESSAGES},
    )
    assert_openai_error(response, 503, "upstream_unreachable")
    with pytest.raises(openai.InternalServerError) as err:
        client(router).chat.completions.create(model="stub-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.status_code == 503
    assert second_stub.requests() == []


def test_hanging_provider_is_504_and_upstream_is_closed(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> None:
    router = start_router(router_env("openai", stub, BYOLLM_UPSTREAM_TIMEOUT="0.5"))
    stub.clear()
    started = time.monotonic()
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "stub-hang", "messages": MESSAGES},
        timeout=10,
    )
    assert_openai_error(response, 504, "upstream_timeout")
    assert time.monotonic() - started < 3
    log = stub.wait_for(lambda log: log[-1].get("outcome") == "disconnected")
    assert log[-1]["outcome"] == "disconnected"


def test_reset_before_answer_is_502(routers: Callable[[str], RouterProcess]) -> None:
    router = routers("openai")
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "stub-reset", "messages": MESSAGES},
    )
    assert_openai_error(response, 502, "upstream_disconnected")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_reset_before_first_chunk_is_502(
    kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    """Stream headers arrived but no data: the client still gets a clean error status."""
    router = routers(kind)
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "stub-reset-after-headers", "messages": MESSAGES, "stream": True},
    )
    assert_openai_error(response, 502, "upstream_disconnected")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_reset_midstream_ends_stream_with_error(
    kind: str, routers: Callable[[str], RouterProcess]
) -> None:
    router = routers(kind)
    stream = client(router).chat.completions.create(
        model="stub-reset-midstream",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    received = []

    def consume() -> None:
        for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIError, match="failed during the response"):
        consume()
    assert received  # chunks before the reset were delivered as they came


def test_hang_midstream_times_out_with_error_event(
    start_router: Callable[[dict[str, str]], RouterProcess], stub: StubServer
) -> None:
    router = start_router(router_env("openai", stub, BYOLLM_UPSTREAM_TIMEOUT="0.5"))
    with httpx.stream(
        "POST",
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "stub-hang-midstream", "messages": MESSAGES, "stream": True},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_timeout"
    assert "[DONE]" not in events[-1]


def test_client_disconnect_cancels_upstream(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers("openai")
    stub.clear()
    with httpx.stream(
        "POST",
        f"{router.base_url}/chat/completions",
        headers=router.headers,
        json={"model": "stub-slow", "messages": MESSAGES, "stream": True},
    ) as response:
        lines = response.iter_lines()
        got = [next(lines) for _ in range(3)]  # first chunks arrive before the stream ends
        assert any(line.startswith("data: ") for line in got)
    # 50 chunks x 100 ms = 5 s if the router kept reading; it must cut the upstream now.
    log = stub.wait_for(lambda log: bool(log) and log[-1].get("outcome") == "disconnected", 3)
    assert log[-1]["model"] == "stub-slow"
    assert log[-1]["outcome"] == "disconnected"
    metrics = httpx.get(f"{router.url}/metrics").text
    assert 'byollm_router_client_disconnects_total{route="chat_completions"}' in metrics


# --- the router's own refusals ----------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic abc", "bearer x"])
def test_inbound_auth_401(
    auth: str | None, routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    router = routers("openai")
    stub.clear()
    headers = {"authorization": auth} if auth else {}
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers=headers,
        json={"model": "stub-model", "messages": MESSAGES},
    )
    assert_openai_error(response, 401, "invalid_router_token")
    assert upstream_entries(stub) == []
    with (
        openai.OpenAI(base_url=router.base_url, api_key="nope", max_retries=0) as api,
        pytest.raises(openai.AuthenticationError),
    ):
        api.models.list()


def test_request_too_large_413(routers: Callable[[str], RouterProcess], stub: StubServer) -> None:
    router = routers("openai")
    stub.clear()
    big = "x" * (10 * 1024 * 1024 + 1)
    with pytest.raises(openai.APIStatusError) as err:
        client(router).chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": big}]
        )
    assert err.value.status_code == 413
    assert err.value.code == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"model": "stub-model", "messages": [{"role": "user", "content": "'
        for _ in range(11):
            yield b"y" * (1024 * 1024)
        yield b'"}]}'

    response = httpx.post(
        f"{router.base_url}/chat/completions", headers=router.headers, content=chunks()
    )
    assert_openai_error(response, 413, "request_too_large")
    assert upstream_entries(stub) == []


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[1, 2]", b'"a string"', b'{"model": 5, "messages": []}']
)
def test_malformed_json_400(raw: bytes, routers: Callable[[str], RouterProcess]) -> None:
    router = routers("openai")
    response = httpx.post(
        f"{router.base_url}/chat/completions",
        headers={**router.headers, "content-type": "application/json"},
        content=raw,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_value")


def test_unknown_route_and_method(routers: Callable[[str], RouterProcess]) -> None:
    router = routers("openai")
    assert_openai_error(
        httpx.get(f"{router.base_url}/completions", headers=router.headers), 404, "unknown_url"
    )
    assert_openai_error(
        httpx.get(f"{router.base_url}/chat/completions", headers=router.headers),
        405,
        "method_not_allowed",
    )


def test_probes_and_metrics(routers: Callable[[str], RouterProcess]) -> None:
    router = routers("openai")
    assert httpx.get(f"{router.url}/healthz").status_code == 200
    assert httpx.get(f"{router.url}/readyz").status_code == 200
    metrics = httpx.get(f"{router.url}/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "byollm_router_requests_total" in text
    assert "byollm_router_request_duration_seconds_bucket" in text
    assert "byollm_router_upstream_responses_total" in text


def test_client_giving_up_on_a_non_streaming_call_cancels_upstream(
    routers: Callable[[str], RouterProcess], stub: StubServer
) -> None:
    """The router's upstream timeout here is 5 s; the client leaves after 0.3 s and the
    provider must see the connection close right away, not at 5 s."""
    router = routers("openai")
    stub.clear()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{router.base_url}/chat/completions",
            headers=router.headers,
            json={"model": "stub-hang", "messages": MESSAGES},
            timeout=0.3,
        )
    log = stub.wait_for(lambda log: bool(log) and log[-1].get("outcome") == "disconnected", 3)
    assert log[-1]["outcome"] == "disconnected"
    assert time.monotonic() - started < 3
