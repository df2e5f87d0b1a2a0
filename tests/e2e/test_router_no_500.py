"""No 500 from any client input: schema-shaped fuzzing of real routers over real sockets.

Hypothesis generates OpenAI chat requests over the whole schema (each field well typed or
not, huge integers included; streamed and not) and sends them to routers for the
translating providers (Anthropic: OpenAI → Anthropic and back; Azure: deployment URLs)
and to an auto-routing router (which reads the messages to classify them), all aimed at
the stub provider, which speaks the real wire formats and validates Anthropic
bodies like the API. The upstream-answer direction is fuzzed the same way against a
scripted upstream in ``test_router_hostile.py``.

Every answer is a status other than 500; an error is OpenAI-shaped (or the provider's own,
passed through); a stream is ``data: <JSON object>`` events. Figures are printed.
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
from stubs import wire_strategies as ws
from stubs.figures import print_figure

STATUSES: Counter[str] = Counter()
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KINDS = ("anthropic", "azure", "auto")
# The auto-router (model "auto", or none) classifies with a call to the same provider.
ROUTING = '{"auto": true, "models": {"fast": "stub-classify-code", "code": "stub-model"}}'


@pytest.fixture(scope="module")
def fuzzed(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, RouterProcess]]:
    routers = {kind: start_router(router_env(kind, stub)) for kind in KINDS[:2]}
    routers["auto"] = start_router(router_env("openai", stub, LLM_ROUTING=ROUTING))
    yield routers
    total, seen = tally(STATUSES)
    line = f"translation fuzz (e2e): {total} requests; statuses {seen}; 500s: 0"
    print_figure(request.config, line)
    assert_routers_clean(routers.values())


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def check_answer(kind: str, stream: bool, status: int, data: bytes) -> None:
    STATUSES[f"{kind}-{'sse' if stream else 'json'}-{status}"] += 1
    assert status != 500, data[:300]
    if status >= 400:
        body = json.loads(data)
        assert isinstance(body, dict)
        # The router's errors are OpenAI-shaped; Anthropic's and Azure's pass through.
        assert "error" in body or body.get("type") == "error", body
        return
    if not stream:
        assert json.loads(data)["object"] == "chat.completion"
        return
    for event in data.split(b"\n\n"):
        if event:
            assert event.startswith(b"data: "), event[:200]
            if event != b"data: [DONE]":
                assert isinstance(json.loads(event[6:]), dict)


@FUZZ
@given(body=ws.chat_request, kind=st.sampled_from(KINDS), stream=st.booleans())
def test_no_client_input_is_a_500(
    fuzzed: dict[str, RouterProcess],
    http: httpx.Client,
    body: dict[str, Any],
    kind: str,
    stream: bool,
) -> None:
    body.setdefault("stream", stream)
    with http.stream(
        "POST",
        fuzzed[kind].url + "/v1/chat/completions",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    ) as response:
        data = response.read()
    sse = response.headers.get("content-type", "").startswith("text/event-stream")
    check_answer(kind, sse, response.status_code, data)
