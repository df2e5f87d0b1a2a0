"""Bounded memory and CPU for any upstream answer, measured on real router processes.

* A 300 MiB non-streamed answer that needs no translation is streamed through: the router's
  peak RSS (``VmHWM``) stays far below the answer's size.
* An answer that must be translated (Anthropic) is held only up to
  ``BYOLLM_MAX_BUFFERED_RESPONSE_BYTES``; beyond it the client gets an OpenAI-shaped 502.
* The Anthropic stream parser is linear: ``/healthz`` stays responsive while a 16 MiB
  event without a boundary is parsed; an event beyond the limit ends the stream with an
  OpenAI-shaped error event.

Figures are printed; the bounds asserted are generous (speed belongs in tests/bench).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from router_harness import RouterProcess, StubServer, router_env
from stubs.figures import print_figure

MIB = 1 << 20
HUGE_MIB = 300
BOUNDLESS_MIB = 16
USER = [{"role": "user", "content": "hi"}]


def anthropic_router(
    start_router: Callable[[dict[str, str]], RouterProcess],
    stub: StubServer,
    tenant: str,
    max_buffered: int,
) -> RouterProcess:
    """A router translating to Anthropic that may hold ``max_buffered`` bytes of an answer."""
    env = router_env("anthropic", stub, BYOLLM_TENANT=tenant)
    return start_router({**env, "BYOLLM_MAX_BUFFERED_RESPONSE_BYTES": str(max_buffered)})


def peak_rss(router: RouterProcess) -> int:
    """The router process's peak resident set size (VmHWM), in bytes."""
    for line in Path(f"/proc/{router.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_huge_untranslated_answer_is_streamed_through(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> None:
    router = start_router(router_env("openai", stub, BYOLLM_TENANT="bounds-rss"))
    before = peak_rss(router)
    client = router.openai()
    received = 0
    tail = b""
    started = time.perf_counter()
    with client.chat.completions.with_streaming_response.create(
        model=f"stub-huge-{HUGE_MIB}", messages=USER
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        for chunk in response.iter_bytes():
            received += len(chunk)
            tail = (tail + chunk)[-200:]
    elapsed = time.perf_counter() - started
    peak = peak_rss(router)
    assert received > HUGE_MIB * MIB
    assert tail.endswith(b'"total_tokens":2}}')  # the whole answer arrived, in order
    print_figure(
        request.config,
        f"router peak RSS relaying a {received / 1e6:.0f} MB non-streamed answer: "
        f"{peak / MIB:.0f} MiB (before: {before / MIB:.0f} MiB; {elapsed:.1f} s, "
        f"{received / MIB / elapsed:.0f} MiB/s)",
    )
    # Generous: the pod's limit is 256 MiB; holding the answer would need > 300 MiB.
    assert peak < 160 * MIB, f"peak RSS {peak / MIB:.0f} MiB"
    assert_healthy(router)


def test_large_answer_cut_midway_is_a_broken_transfer(
    stub: StubServer, start_router: Callable[[dict[str, str]], RouterProcess]
) -> None:
    """Streamed through, a JSON answer cannot end in an error event: the client sees the
    transfer break (never a truncated body that parses), and the router stays up."""
    router = start_router(router_env("openai", stub, BYOLLM_TENANT="bounds-rss"))
    client = router.openai()
    with client.chat.completions.with_streaming_response.create(
        model="stub-huge-cut-4", messages=USER
    ) as response:
        assert response.status_code == 200
        # (the SDK's own httpx: RemoteProtocolError, "incomplete chunked read")
        with pytest.raises(Exception, match="incomplete chunked read") as err:
            for _ in response.iter_bytes():
                pass
        assert type(err.value).__name__ == "RemoteProtocolError"
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="stub-huge-cut-2", messages=USER)
    assert_healthy(router)


def test_translated_answer_beyond_the_limit_is_a_502(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> None:
    router = anthropic_router(start_router, stub, "bounds-cap", 4 * MIB)
    client = router.openai()
    # Under the limit: translated as usual.
    ok = client.chat.completions.create(model="stub-huge-3", messages=USER)
    assert len(ok.choices[0].message.content or "") == 3 * MIB
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model=f"stub-huge-{HUGE_MIB}", messages=USER)
    assert err.value.status_code == 502
    body: Any = err.value.body
    assert body["code"] == "upstream_response_too_large", body
    assert str(4 * MIB) in body["message"]
    peak = peak_rss(router)
    print_figure(
        request.config,
        f"router peak RSS refusing a {HUGE_MIB} MiB answer to translate "
        f"(limit 4 MiB): {peak / MIB:.0f} MiB",
    )
    assert peak < 160 * MIB
    # The router stays usable, and the upstream connection it dropped is not reused.
    assert client.chat.completions.create(model="stub-model", messages=USER).choices
    assert_healthy(router)


def test_healthz_stays_responsive_while_a_boundaryless_stream_is_parsed(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> None:
    # A limit above the event's size, so the parser really scans all 16 MiB.
    router = anthropic_router(start_router, stub, "bounds-sse", 64 * MIB)
    outcome: dict[str, Any] = {}

    def consume() -> None:
        started = time.perf_counter()
        try:
            stream = router.openai().chat.completions.create(
                model=f"stub-boundless-{BOUNDLESS_MIB}", messages=USER, stream=True
            )
            outcome["chunks"] = sum(1 for _ in stream)
        except openai.APIError as exc:
            outcome["error"] = exc.body
        outcome["seconds"] = time.perf_counter() - started

    worker = threading.Thread(target=consume)
    worker.start()
    latencies: list[float] = []
    with httpx.Client(timeout=30) as http:
        while worker.is_alive() or not latencies:
            t0 = time.perf_counter()
            assert http.get(router.url + "/healthz").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.01)
    worker.join()
    worst = max(latencies)
    print_figure(
        request.config,
        f"/healthz while a {BOUNDLESS_MIB} MiB boundary-less Anthropic stream was parsed "
        f"({outcome['seconds']:.2f} s): {len(latencies)} probes, worst "
        f"{worst * 1000:.0f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms",
    )
    # The stream never completes an event and is cut: one OpenAI-shaped error event.
    assert outcome.get("error", {}).get("code") == "upstream_disconnected", outcome
    assert worst < 2.0, f"/healthz stalled {worst:.2f} s"


def test_one_event_beyond_the_limit_ends_the_stream_with_an_error(
    stub: StubServer, start_router: Callable[[dict[str, str]], RouterProcess]
) -> None:
    router = anthropic_router(start_router, stub, "bounds-event", 65536)
    stream = router.openai().chat.completions.create(
        model=f"stub-boundless-{BOUNDLESS_MIB}", messages=USER, stream=True
    )
    with pytest.raises(openai.APIError) as err:
        for _ in stream:
            pass
    body: Any = err.value.body
    assert body["code"] == "upstream_response_too_large", body
    assert_healthy(router)


def assert_healthy(router: RouterProcess) -> None:
    assert router.proc.poll() is None, router.log_text()[-2000:]
    assert httpx.get(router.url + "/healthz", timeout=5).status_code == 200
    assert "Traceback" not in router.log_text()
