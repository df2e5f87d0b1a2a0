"""Azure deployment names and slow or numerous clients, against real router processes.

* A request's model is an Azure deployment name only if Azure's naming rules allow it;
  ``..``, ``.`` and anything with ``/`` never reach the upstream (they would walk the URL).
* Clients trickling a request head or body over loopback are answered 408 and dropped
  after ``BYOLLM_CLIENT_HEADER_TIMEOUT`` / ``BYOLLM_CLIENT_BODY_TIMEOUT``; a client that
  stops reading is let go after ``BYOLLM_CLIENT_WRITE_TIMEOUT``; beyond
  ``BYOLLM_MAX_CONNECTIONS`` a new connection gets an OpenAI-shaped 503. Counts and
  durations are bounded; the figures are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from router_harness import TOKEN, RouterProcess, StubServer, router_env
from stubs.figures import print_figure

USER = [{"role": "user", "content": "hi"}]

BAD_DEPLOYMENTS = [
    "..",
    ".",
    "../..",
    "../../deployments/other",
    "a/../b",
    "x/..",
    "%2e%2e",
    ".hidden",
    "-lead",
    "a",
    "a" * 65,
    "a b",
    "dep?api-version=1",
    "dep#frag",
    "dép",
    "dep\\..",
]


@pytest.mark.parametrize("name", BAD_DEPLOYMENTS)
def test_azure_refuses_names_that_are_not_deployments(
    stub: StubServer, routers: Callable[[str], RouterProcess], name: str
) -> None:
    client = routers("azure").openai()
    stub.clear()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=name, messages=USER)
    body = err.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"]) == ("invalid_value", "model")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=name, input="x")
    assert stub.requests() == []  # nothing reached the provider


@pytest.mark.parametrize("name", ["gpt-4.1-mini", "my_dep.v2", "GPT4o", "a" * 64, "x.."])
def test_azure_deployment_names_azure_allows(
    stub: StubServer, routers: Callable[[str], RouterProcess], name: str
) -> None:
    client = routers("azure").openai()
    stub.clear()
    reply = client.chat.completions.create(model=name, messages=USER)
    assert reply.choices[0].message.content == "echo: hi"
    assert stub.requests()[-1]["path"] == f"/openai/deployments/{name}/chat/completions"


async def _trickle(
    port: int, trickled: bytes, every_s: float, limit_s: float, sent_first: bytes = b""
) -> tuple[float, bytes]:
    """Send ``sent_first`` at once, then ``trickled`` one byte every ``every_s``, until the
    router answers or closes; return how long the connection was held and what the router
    sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(sent_first)
    got = b""
    try:
        for byte in trickled:
            if time.monotonic() - started > limit_s:
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            try:
                got = await asyncio.wait_for(reader.read(65536), every_s)
            except TimeoutError:
                continue
            break  # an answer, or EOF
        rest = await asyncio.wait_for(reader.read(), 5)  # the router closes after answering
        return time.monotonic() - started, got + rest
    except ConnectionError:
        return time.monotonic() - started, got
    finally:
        writer.close()


def _status_and_code(raw: bytes) -> tuple[int, str | None]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    code = json.loads(body)["error"]["code"] if body else None
    return status, code


def test_trickling_clients_are_answered_408_and_dropped(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> None:
    header_timeout, body_timeout = 1.0, 2.0
    router = start_router(
        router_env(
            "openai",
            stub,
            BYOLLM_TENANT="slow-clients",
            BYOLLM_CLIENT_HEADER_TIMEOUT=str(header_timeout),
            BYOLLM_CLIENT_BODY_TIMEOUT=str(body_timeout),
        )
    )
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nX-Title: " + b"a" * 200
    body_head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Length: 5000\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
    )
    count = 50

    async def scenario() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]], float]:
        heads = [_trickle(router.port, head * 100, 0.1, 20) for _ in range(count)]
        # Body trickle: the head arrives whole, then the body byte by byte.
        bodies = [_trickle(router.port, b"a" * 5000, 0.1, 20, body_head) for _ in range(5)]
        idle = _trickle(router.port, b"", 0.1, 20)  # connects, sends nothing
        probe = asyncio.create_task(_probe_healthz(router.url, 2.0))
        results = await asyncio.gather(*heads, *bodies, idle)
        worst = await probe
        return list(results[:count]), list(results[count:]), worst

    heads, bodies, healthz_worst = asyncio.run(scenario())
    held = [t for t, _ in heads + bodies]
    for seconds, raw in heads:
        assert _status_and_code(raw) == (408, "request_timeout"), raw[:200]
        assert seconds < header_timeout + 8, seconds  # generous; without a limit: for ever
    assert _status_and_code(bodies[-1][1]) == (408, "request_timeout")  # the idle one
    for seconds, raw in bodies[:-1]:
        assert _status_and_code(raw) == (408, "request_timeout"), raw[:200]
        assert seconds < body_timeout + 8, seconds
    print_figure(
        request.config,
        f"slow clients: {count} trickling heads, 5 trickling bodies and 1 idle connection "
        f"on loopback all answered 408 and closed; held at most {max(held):.1f} s "
        f"(head limit {header_timeout:.0f} s, body limit {body_timeout:.0f} s); "
        f"/healthz worst {healthz_worst * 1000:.0f} ms meanwhile",
    )
    assert router.openai().chat.completions.create(model="stub-model", messages=USER).choices


async def _probe_healthz(url: str, duration_s: float) -> float:
    worst = 0.0
    async with httpx.AsyncClient(timeout=10) as client:
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            t0 = time.monotonic()
            assert (await client.get(url + "/healthz")).status_code == 200
            worst = max(worst, time.monotonic() - t0)
            await asyncio.sleep(0.05)
    return worst


def test_connections_beyond_the_cap_get_a_503(
    stub: StubServer, start_router: Callable[[dict[str, str]], RouterProcess]
) -> None:
    cap = 20
    router = start_router(
        router_env("openai", stub, BYOLLM_TENANT="conn-cap", BYOLLM_MAX_CONNECTIONS=str(cap))
    )
    held = [socket.create_connection(("127.0.0.1", router.port), timeout=10) for _ in range(cap)]
    try:
        # Requests on the held connections are served: they are within the cap.
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", router.port), timeout=10) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
            raw = b""
            while chunk := extra.recv(65536):
                raw += chunk
        assert _status_and_code(raw) == (503, "router_overloaded"), raw[:300]
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the router notices the closed connections, then serves again
        try:
            status = httpx.get(router.url + "/healthz", timeout=5).status_code
        except httpx.TransportError:
            status = 0
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200


@pytest.mark.parametrize(
    ("model", "stream"),
    [("stub-huge-300", False), ("stub-boundless-300", True)],
    ids=["json", "sse"],
)
def test_a_client_that_stops_reading_is_let_go(
    stub: StubServer,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
    model: str,
    stream: bool,
) -> None:
    """A client that asks for a large answer and then reads nothing: once every buffer is
    full, the router waits ``BYOLLM_CLIENT_WRITE_TIMEOUT``, then closes the connection and
    cancels the upstream request (the provider stops generating)."""
    router = start_router(
        router_env("openai", stub, BYOLLM_TENANT="stalled", BYOLLM_CLIENT_WRITE_TIMEOUT="1")
    )
    body = json.dumps({"model": model, "messages": USER, "stream": stream}).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", router.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        started = time.monotonic()
        sock.sendall(head + body)
        log = stub.wait_for(
            lambda entries: any(
                e.get("model") == model and e.get("outcome") == "disconnected" for e in entries
            ),
            timeout=30,
        )
        held = time.monotonic() - started
        assert any(e.get("model") == model and e.get("outcome") == "disconnected" for e in log)
        received = 0
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
    assert received < 300 * (1 << 20)  # the answer was abandoned, not delivered
    print_figure(
        request.config,
        f"a client that stopped reading a {'streamed' if stream else 'non-streamed'} answer "
        f"was let go after {held:.1f} s (write timeout 1 s); {received >> 20} MiB had been "
        "buffered towards it",
    )
    assert '"client_stalled"' in router.log_text()
    assert httpx.get(router.url + "/healthz", timeout=5).status_code == 200
