"""Hostile input at a real router process, over real sockets (issue 7, item 5).

Two router processes (OpenAI-compatible passthrough and Anthropic translation, started
by the shared ``start_router`` harness of ``conftest.py``) run against a *hostile
upstream*: a raw asyncio HTTP server on 127.0.0.1 that answers whatever bytes a test
scripts (broken SSE, junk, truncated chunked framing, resets). Hypothesis then throws
malformed JSON, wrong types, huge bodies and header injection from the client side and
broken streams from the upstream side; Anthropic answers and event streams are drawn over
their whole schema too (``stubs.wire_strategies``).

Invariants checked on every example:
* the router answers (no hang, no dropped connection on a well-formed request);
* every error the router itself produces is a 4xx/5xx with an OpenAI-shaped body;
* never a 500 (an unhandled exception), and the process is alive with /healthz OK after;
* OpenAI passthrough streams reach the client byte for byte;
* the router token never reaches the upstream, and no injected header does.

The number of generated examples is printed at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from router_harness import RouterProcess
from stubs import wire_strategies as ws
from stubs.figures import print_figure

TOKEN = "router-token-HOSTILE-0123456789"
UPSTREAM_KEY = "sk-upstream-HOSTILE-key-0123456789"
LIMIT = 64 * 1024  # BYOLLM_MAX_REQUEST_BYTES for these routers
EXAMPLES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()

SETTINGS = settings(
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- the hostile upstream -------------------------------------------------------------


@dataclass
class Script:
    """What the upstream answers: status, headers, body pieces and how it ends."""

    chunks: list[bytes]
    end: str = "finish"  # finish | close (truncate chunked framing) | reset (TCP RST)
    status: int = 200
    content_type: bytes = b"text/event-stream"
    extra_headers: list[bytes] = field(default_factory=list)
    raw: bytes | None = None  # if set: write exactly these bytes, then close


@dataclass
class Upstream:
    port: int = 0
    scripts: dict[str, Script] = field(default_factory=dict)
    seen_headers: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None
    main_task: asyncio.Task[None] | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head[:-4].split(b"\r\n")
                path = lines[0].split(b" ")[1] if len(lines[0].split(b" ")) > 1 else b"/"
                headers = [
                    (k.strip().lower(), v.strip())
                    for k, _, v in (line.partition(b":") for line in lines[1:])
                ]
                self.seen_headers.append(headers)
                length = int(dict(headers).get(b"content-length", b"0"))
                body = await reader.readexactly(length) if length else b""
                if not await self.answer(path, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def answer(self, path: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write the scripted (or default) answer; False when the connection must end."""
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        model = req.get("model") if isinstance(req, dict) else None
        script = self.scripts.get(model) if isinstance(model, str) else None
        if script is None:
            script = default_script(path, req)
        if script.raw is not None:
            writer.write(script.raw)
            await writer.drain()
            writer.close()
            return False
        writer.write(
            b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n"
            % (script.status, script.content_type)
            + b"".join(h + b"\r\n" for h in script.extra_headers)
            + b"\r\n"
        )
        for chunk in script.chunks:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        if script.end == "finish":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        await writer.drain()
        if script.end == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        return False


def default_script(path: bytes, req: Any) -> Script:
    stream = isinstance(req, dict) and req.get("stream") is True
    if path.startswith(b"/v1/messages"):
        if stream:
            events = [
                {"type": "message_start", "message": {"id": "m", "model": "x", "usage": {}}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
                {"type": "message_stop"},
            ]
            return Script([b"event: e\ndata: " + json.dumps(e).encode() + b"\n\n" for e in events])
        msg = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "x",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        return Script([json.dumps(msg).encode()], content_type=b"application/json")
    if stream:
        chunk = {"id": "c", "object": "chat.completion.chunk", "choices": []}
        return Script([b"data: " + json.dumps(chunk).encode() + b"\n\n", b"data: [DONE]\n\n"])
    answer = {"id": "c", "object": "chat.completion", "choices": [], "model": "x"}
    return Script([json.dumps(answer).encode()], content_type=b"application/json")


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        up.loop = loop

        async def main() -> None:
            server = await asyncio.start_server(up.handle, "127.0.0.1", 0, limit=1 << 20)
            up.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        up.main_task = loop.create_task(main())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(up.main_task)
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield up
    assert up.loop is not None
    assert up.main_task is not None
    up.loop.call_soon_threadsafe(up.main_task.cancel)
    thread.join(5)


# --- router processes -----------------------------------------------------------------


Routers = dict[str, RouterProcess]


def assert_healthy(router: RouterProcess) -> None:
    assert router.proc.poll() is None, f"router exited: {router.log_text()[-3000:]}"
    r = httpx.get(router.url + "/healthz", timeout=5)
    assert r.status_code == 200, r.text


def hostile_env(provider: str, upstream: Upstream) -> dict[str, str]:
    return {
        "LLM_MODE": "BYO",
        "LLM_PROVIDER": provider,
        "LLM_BASE_URL": f"http://127.0.0.1:{upstream.port}/v1",
        "LLM_API_KEY": UPSTREAM_KEY,
        "LLM_MODEL": "default-model",
        "BYOLLM_ROUTER_TOKEN": TOKEN,
        "BYOLLM_UPSTREAM_ALLOWLIST": "127.0.0.1",
        "BYOLLM_MAX_REQUEST_BYTES": str(LIMIT),
        "BYOLLM_UPSTREAM_TIMEOUT": "5",
        "BYOLLM_TENANT": f"hostile-{provider}",
    }


@pytest.fixture(scope="module")
def hostile(
    upstream: Upstream,
    start_router: Callable[[dict[str, str]], RouterProcess],
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, RouterProcess]]:
    """Two routers (the shared harness's processes) aimed at the hostile upstream."""
    started = {
        "openai": start_router(hostile_env("custom", upstream)),
        "anthropic": start_router(hostile_env("anthropic", upstream)),
    }
    yield started
    try:
        for r in started.values():
            assert_healthy(r)
            text = r.log_text()
            assert "Traceback" not in text, text[-3000:]
            assert TOKEN not in text
            assert UPSTREAM_KEY not in text
    finally:
        counts = {k: v for k, v in EXAMPLES.items() if not k.startswith("_")}
        total = sum(counts.values())
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        statuses = ", ".join(f"{k}:{v}" for k, v in sorted(STATUSES.items()))
        line = (
            f"hostile router inputs generated: {total} ({detail}); router statuses "
            f"{statuses} (upstream pass-through not counted)"
        )
        print_figure(request.config, line)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15, headers={"authorization": f"Bearer {TOKEN}"}) as c:
        yield c


# --- shared checks --------------------------------------------------------------------


def assert_openai_error(response: httpx.Response, content: bytes | None = None) -> None:
    """A router-made error: 4xx/5xx, JSON body ``{"error": {message, type, code}}``."""
    assert 400 <= response.status_code < 600
    body = json.loads(response.content if content is None else content)
    err = body["error"]
    assert isinstance(err["message"], str)
    assert err["message"]
    assert isinstance(err["type"], str)
    assert "code" in err


def record(name: str, status: int, upstream_status: int | None = None) -> None:
    """Count the example; a 500 the upstream did not send is an unhandled router error."""
    EXAMPLES[name] += 1
    if upstream_status is None:  # statuses passed through from the upstream are not counted
        STATUSES[status] += 1
    assert status != 500 or upstream_status == 500, "unhandled exception in the router"


def check_upstream_headers(upstream: Upstream) -> None:
    """Nothing the client sent leaks upstream but the allowed, forwarded headers."""
    allowed = {
        b"host",
        b"content-type",
        b"content-length",
        b"user-agent",
        b"authorization",
        b"x-api-key",
        b"anthropic-version",
        b"accept",
        b"accept-encoding",
        b"connection",
        b"openai-organization",
        b"openai-project",
        b"openai-beta",
        b"http-referer",
        b"x-title",
        b"idempotency-key",
        b"x-request-id",
        b"anthropic-beta",
    }
    while upstream.seen_headers:
        headers = upstream.seen_headers.pop()
        for name, value in headers:
            assert name in allowed, name
            assert TOKEN.encode() not in value, "router token forwarded upstream"


def _sse_events(data: bytes) -> list[bytes]:
    return [e for e in data.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]


def _new_id() -> str:
    EXAMPLES["_ids"] += 1
    return f"h-{EXAMPLES['_ids']}"


# --- client side: malformed JSON, wrong types ------------------------------------------

json_leaf = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=15,
)
chat_fields = st.fixed_dictionaries(
    {},
    optional={
        "model": json_value,
        "messages": json_value
        | st.lists(
            st.fixed_dictionaries({}, optional={"role": json_value, "content": json_value}),
            max_size=3,
        ),
        "stream": json_value,
        "tools": json_value,
        "tool_choice": json_value,
        "max_tokens": json_value,
        "stream_options": json_value,
        "temperature": json_value,
        "n": json_value,
    },
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    chat_fields.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[" * 1100,
            b'{"model": NaN, "messages": []}',
            b'{"model": "x", "messages": [], "n": 1' + b"0" * 5000 + b"}",
            b'{"model": "\\ud800", "messages": []}',
            b'{"model": "x", "model": 5}',
            b"\xef\xbb\xbf{}",
            b"\xff\xfe{\x00}\x00",
            b'{"messages": "\x00"}',
            b"null",
            b"1e999999",
        ]
    ),
)


@SETTINGS
@given(body=raw_bodies, route=st.sampled_from(["openai", "anthropic"]))
def test_malformed_and_mistyped_bodies(
    hostile: Routers,
    upstream: Upstream,
    http: httpx.Client,
    body: bytes,
    route: str,
) -> None:
    router = hostile[route]
    with http.stream(
        "POST",
        router.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    ) as r:
        data = r.read()
    record("bodies", r.status_code)
    assert r.status_code in (200, 400, 502), (r.status_code, data[:300])
    if r.status_code >= 400:
        assert_openai_error(r)
    check_upstream_headers(upstream)


@SETTINGS
@given(
    size=st.one_of(
        st.integers(min_value=0, max_value=4 * LIMIT),
        st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1, 8 * LIMIT + 1]),
    ),
    chunked=st.booleans(),
)
def test_huge_bodies(hostile: Routers, http: httpx.Client, size: int, chunked: bool) -> None:
    prefix = b'{"model": "x", "messages": [], "pad": "'
    body = prefix + b"a" * max(0, size - len(prefix) - 2) + b'"}'

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    content: Any = pieces() if chunked else body
    r = http.post(hostile["openai"].url + "/v1/chat/completions", content=content)
    record("huge", r.status_code)
    if len(body) > LIMIT:
        assert r.status_code == 413
        assert_openai_error(r)
    else:
        assert r.status_code == 200, r.text[:300]


# --- client side: header injection over a raw socket ----------------------------------

VALID_BODY = b'{"model": "x", "messages": [{"role": "user", "content": "hi"}]}'


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while not _complete(out):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def _complete(raw: bytes) -> bool:
    """A whole response with a Content-Length has arrived (keep-alive need not close)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False


def parse_response(raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
    return status, headers, body


SAFE_HEADER_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(range(0x80, 0x100)) | {0x09}
header_bytes = st.lists(
    st.sampled_from(
        [
            b"a",
            b"Z9",
            b" ",
            b"\t",
            b"\r",
            b"\n",
            b"\r\n",
            b"\x00",
            b"\x01",
            b"\x7f",
            b"\xc3\xa9",
            b"\xff",
            b":",
            b";",
            b",",
            b'"',
            b"Bearer ",
            TOKEN.encode(),
            b"\r\nX-Injected: 1",
            b"\r\nTransfer-Encoding: chunked",
            b"\r\nContent-Length: 0",
            b"\r\n\r\nGET /metrics HTTP/1.1\r\n",
        ]
    ),
    max_size=8,
).map(b"".join)
safe_header_value = st.binary(max_size=60).map(
    lambda b: bytes(c for c in b if c in SAFE_HEADER_BYTES).strip()
)
header_value = st.one_of(safe_header_value, header_bytes)
header_names = st.one_of(
    st.sampled_from(
        [
            b"Authorization",
            b"authorization",
            b"X-Title",
            b"HTTP-Referer",
            b"X-Request-Id",
            b"OpenAI-Organization",
            b"Content-Type",
            b"X-Custom",
            b"Host",
        ]
    ),
    header_bytes.filter(lambda b: 0 < len(b) < 40),
)
auth_values = st.one_of(
    st.just(b"Bearer " + TOKEN.encode()),
    st.builds(lambda n: b"Bearer " + b"A" * n, st.integers(min_value=0, max_value=200_000)),
    st.builds(
        lambda p, n: b"Bearer " + TOKEN.encode()[:p] + b"x" * n,
        st.integers(0, 40),
        st.integers(0, 3),
    ),
    header_bytes,
    st.just(b"bearer " + TOKEN.encode() + b" "),
    st.just(b"Basic " + TOKEN.encode()),
)


@SETTINGS
@given(
    auth=st.none() | auth_values | st.just(b"Bearer " + TOKEN.encode()),
    extra=st.lists(st.tuples(header_names, header_value), max_size=5),
    path=st.sampled_from(
        [
            b"/v1/chat/completions",
            b"/v1/chat/completions/",
            b"/v1//chat/completions",
            b"/v1/chat/completions?x=\r\n",
            b"/v1/../v1/chat/completions",
            b"/v1/chat/completions%00",
            b"/" + b"a" * 10000,
        ]
    ),
)
def test_header_injection(
    hostile: Routers,
    upstream: Upstream,
    auth: bytes | None,
    extra: list[tuple[bytes, bytes]],
    path: bytes,
) -> None:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: router"]
    if auth is not None:
        lines.append(b"Authorization: " + auth)
    lines += [name + b": " + value for name, value in extra]
    lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(VALID_BODY)]
    lines.append(b"Connection: close")
    request = b"\r\n".join(lines) + b"\r\n\r\n" + VALID_BODY
    raw = raw_exchange(hostile["openai"].port, request)
    assert raw, "connection closed without an answer"
    status, headers, body = parse_response(raw)
    record("headers", status)
    assert status in (200, 400, 401, 404, 413, 431), (status, raw[:300])
    if status >= 400 and headers.get(b"content-type") == b"application/json":
        err = json.loads(body)["error"]
        assert err["message"]
        assert err["type"]
    if status == 200:
        # Only a well-framed request with exactly the right token gets through.
        assert TOKEN.encode() in request
    for seen in upstream.seen_headers:
        assert b"x-injected" not in dict(seen)
    check_upstream_headers(upstream)


POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n"


FORWARDED = [
    b"x-title",
    b"http-referer",
    b"x-request-id",
    b"openai-organization",
    b"anthropic-beta",
]


@SETTINGS
@given(
    route=st.sampled_from(["openai", "anthropic"]),
    values=st.lists(
        st.tuples(
            st.sampled_from(FORWARDED),
            st.binary(max_size=40).map(
                lambda b: bytes(c for c in b if c not in (0x00, 0x0A, 0x0D)).strip()
            ),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_forwarded_header_values(
    hostile: Routers, upstream: Upstream, route: str, values: list[tuple[bytes, bytes]]
) -> None:
    """Authorised requests whose forwarded headers carry control or non-ASCII bytes: the
    router either forwards them or refuses with a 400; never a 5xx blamed on the upstream."""
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: router"]
    lines.append(b"Authorization: Bearer " + TOKEN.encode())
    lines += [name + b": " + value for name, value in values]
    lines += [b"Content-Length: %d" % len(VALID_BODY), b"Connection: close"]
    raw = raw_exchange(hostile[route].port, b"\r\n".join(lines) + b"\r\n\r\n" + VALID_BODY)
    assert raw, "connection closed without an answer"
    status, _, body = parse_response(raw)
    record("forwarded-headers", status)
    assert status in (200, 400), (status, body[:300])
    check_upstream_headers(upstream)


@pytest.mark.parametrize("value", [b"\x80", b"caf\xc3\xa9", b"\xff" * 10])
@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_forwarded_header_non_ascii(hostile: Routers, route: str, value: bytes) -> None:
    """Found by this suite: a non-ASCII forwarded header was decoded as latin-1, then
    httpx's ASCII encoding raised UnicodeEncodeError -> 500; fixed in the router."""
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: router"]
    lines += [b"Authorization: Bearer " + TOKEN.encode(), b"X-Title: " + value]
    lines += [b"Content-Length: %d" % len(VALID_BODY), b"Connection: close"]
    raw = raw_exchange(hostile[route].port, b"\r\n".join(lines) + b"\r\n\r\n" + VALID_BODY)
    status, _, body = parse_response(raw)
    record("forwarded-headers", status)
    assert status in (200, 400), (status, body[:300])


@pytest.mark.parametrize(
    "request_bytes",
    [
        POST + b"Content-Length: -1\r\n\r\n",
        POST + b"Content-Length: abc\r\n\r\n",
        POST + b"Content-Length: 99999999999999999999\r\n\r\n",
        POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        b"FOO /v1/chat/completions HTTP/1.1\r\nHost: r\r\n\r\n",
        b"GET /v1/models HTTP/9.9\r\nHost: r\r\n\r\n",
        b"GET /v1/models\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
        b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer "
        + b"A" * (1 << 20)
        + b"\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
    ids=lambda b: repr(b[:40]),
)
def test_protocol_violations(hostile: Routers, request_bytes: bytes) -> None:
    """Broken framing: the server answers (4xx, or 200 where lenient) or closes; it never
    fails with a 5xx and the router stays up."""
    router = hostile["openai"]
    with contextlib.suppress(TimeoutError, socket.timeout):
        raw = raw_exchange(router.port, request_bytes + b"\r\n", timeout=3)
        if raw:
            status = int(raw.split(b" ", 2)[1])
            record("protocol", status)
            assert status < 500, raw[:200]  # 4xx for broken framing; never a server error
    assert_healthy(router)


# --- upstream side: broken SSE --------------------------------------------------------

sse_piece = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n", json_value),
    st.sampled_from(
        [
            b"data: [DONE]\n\n",
            b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n',
            b"data: {broken\n\n",
            b": keep-alive comment\n\n",
            b"event: error\ndata: {}\n\n",
            b"data: ",
            b"\n",
            b"\r\n\r\n",
            b"\r",
            b"retry: 10\n",
            b"id: \x00\n",
            b"data: " + b"x" * 70000 + b"\n\n",
        ]
    ),
)


@SETTINGS
@given(pieces=st.lists(sse_piece, max_size=10), end=st.sampled_from(["finish", "close", "reset"]))
def test_broken_sse_passthrough(
    hostile: Routers,
    upstream: Upstream,
    http: httpx.Client,
    pieces: list[bytes],
    end: str,
) -> None:
    """OpenAI-compatible streams pass through byte for byte; a cut stream ends with one
    OpenAI-shaped error event; the client's stream always terminates."""
    sid = _new_id()
    upstream.scripts[sid] = Script(pieces, end=end)
    body = {"model": sid, "messages": [{"role": "user", "content": "x"}], "stream": True}
    with http.stream("POST", hostile["openai"].url + "/v1/chat/completions", json=body) as r:
        data = r.read()
    del upstream.scripts[sid]
    record("sse-openai", r.status_code)
    sent = b"".join(pieces)
    if r.status_code == 502:  # the stream broke before its first byte reached the client
        assert end != "finish"
        assert_openai_error(r, data)
        return
    assert r.status_code == 200
    if end == "finish":
        assert data == sent
    else:
        tail = data[len(sent) :] if data.startswith(sent) else None
        if tail is None:  # a reset may lose bytes in flight; what arrived is a prefix
            assert end == "reset"
            cut = data.rfind(b'data: {"error"')
            assert sent.startswith(data[:cut] if cut >= 0 else data)
        elif tail:
            assert tail.startswith(b"data: "), tail[:200]
            assert b'"error"' in tail, tail[:200]


anthropic_event = st.builds(
    lambda kind, fields: (
        b"event: "
        + kind.encode()
        + b"\ndata: "
        + json.dumps({"type": kind, **fields}).encode()
        + b"\n\n"
    ),
    st.sampled_from(
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "ping",
            "error",
            "unknown_future_event",
        ]
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "message": json_value,
            "index": json_value,
            "content_block": json_value
            | st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "tool_use", "thinking"])},
                optional={"text": json_value, "id": json_value, "name": json_value},
            ),
            "delta": json_value
            | st.fixed_dictionaries(
                {
                    "type": st.sampled_from(
                        ["text_delta", "input_json_delta", "thinking_delta", "x"]
                    )
                },
                optional={
                    "text": json_value,
                    "partial_json": json_value,
                    "thinking": json_value,
                    "stop_reason": json_value,
                },
            ),
            "usage": json_value,
            "error": json_value,
        },
    ),
)


@SETTINGS
@given(
    pieces=st.lists(st.one_of(anthropic_event, sse_piece, ws.anthropic_events), max_size=10),
    end=st.sampled_from(["finish", "close", "reset"]),
    gzip_lie=st.booleans(),
)
def test_broken_sse_translated(
    hostile: Routers,
    upstream: Upstream,
    http: httpx.Client,
    pieces: list[bytes],
    end: str,
    gzip_lie: bool,
) -> None:
    """Anthropic streams are translated; junk becomes one OpenAI-shaped error event;
    every event the client sees is ``data: <JSON object>`` or ``data: [DONE]``."""
    sid = _new_id()
    extra = [b"content-encoding: gzip"] if gzip_lie else []
    upstream.scripts[sid] = Script(pieces, end=end, extra_headers=extra)
    body = {"model": sid, "messages": [{"role": "user", "content": "x"}], "stream": True}
    with http.stream("POST", hostile["anthropic"].url + "/v1/chat/completions", json=body) as r:
        data = r.read()
    del upstream.scripts[sid]
    record("sse-anthropic", r.status_code)
    if r.status_code == 502:  # broke (or was junk) before anything could be sent
        assert_openai_error(r, data)
        return
    assert r.status_code == 200
    for event in _sse_events(data):
        assert event.startswith(b"data: "), event[:200]
        payload = event[6:]
        if payload != b"[DONE]":
            assert isinstance(json.loads(payload), dict), payload[:200]


@SETTINGS
@given(
    payload=st.one_of(
        ws.anthropic_message.map(lambda m: json.dumps(m).encode()),
        st.binary(max_size=200),
        json_value.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {},
            optional={
                "id": json_value,
                "content": json_value,
                "stop_reason": json_value,
                "usage": json_value,
                "model": json_value,
            },
        ).map(lambda v: json.dumps(v).encode()),
    ),
    status=st.sampled_from([200, 201, 400, 429, 500, 529]),
)
def test_junk_json_answers(
    hostile: Routers,
    upstream: Upstream,
    http: httpx.Client,
    payload: bytes,
    status: int,
) -> None:
    """Non-streamed junk: passthrough keeps it verbatim; translation fails cleanly (502)."""
    sid = _new_id()
    upstream.scripts[sid] = Script([payload], status=status, content_type=b"application/json")
    body = {"model": sid, "messages": [{"role": "user", "content": "x"}]}
    r_openai = http.post(hostile["openai"].url + "/v1/chat/completions", json=body)
    r_anth = http.post(hostile["anthropic"].url + "/v1/chat/completions", json=body)
    del upstream.scripts[sid]
    for resp in (r_openai, r_anth):  # equal to the scripted status = passed through
        record("junk-json", resp.status_code, status if resp.status_code == status else None)
    assert (r_openai.status_code, r_openai.content) == (status, payload)
    if not 200 <= status < 300:
        assert (r_anth.status_code, r_anth.content) == (status, payload)  # verbatim
    elif r_anth.status_code != status:
        assert r_anth.status_code == 502
        assert_openai_error(r_anth)
    else:
        assert isinstance(r_anth.json(), dict)


DEEP_JSON = [b"[" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000, b"[" * 60_000]


@pytest.mark.parametrize("body", DEEP_JSON, ids=["1k-arrays", "1k-objects", "60k-arrays"])
def test_deeply_nested_json(hostile: Routers, http: httpx.Client, body: bytes) -> None:
    """Nesting beyond orjson's limit (1024) falls back to ``json.loads``, which must not
    turn a RecursionError into a 500: it is the client's bad JSON (400).

    Found by this suite (RecursionError escaped ``app._loads`` -> 500); fixed in the router.
    """
    r = http.post(hostile["openai"].url + "/v1/chat/completions", content=body)
    record("deep-json", r.status_code)
    assert r.status_code == 400
    assert_openai_error(r)


UPSTREAM_JUNK = {
    "garbage status line": b"HTTP/1.1 abc\r\n\r\n",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n",
    "nothing": b"",
    "half a status line": b"HTTP/1.1 2",
    "headers never end": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n",
    "content-length lies": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}",
    "bad chunk size": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    "huge header": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 300_000 + b"\r\n\r\n",
    "null bytes": b"\x00" * 1000,
    "HTTP/0.9 body": b"{}",
    "1xx forever": b"HTTP/1.1 100 Continue\r\n\r\n" * 50,
    "gzip lie": b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\njunk",
}


@pytest.mark.parametrize("route", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("junk", list(UPSTREAM_JUNK), ids=list(UPSTREAM_JUNK))
def test_upstream_protocol_junk(
    hostile: Routers,
    upstream: Upstream,
    http: httpx.Client,
    junk: str,
    stream: bool,
    route: str,
) -> None:
    """An upstream that is not speaking HTTP properly: a clean 502 (or an error event if
    the stream had started), never a hang or a 500."""
    sid = _new_id()
    upstream.scripts[sid] = Script([], raw=UPSTREAM_JUNK[junk])
    body = {"model": sid, "messages": [{"role": "user", "content": "x"}], "stream": stream}
    with http.stream("POST", hostile[route].url + "/v1/chat/completions", json=body) as r:
        data = b"".join(r.iter_raw())  # verbatim: a gzip lie is passed on undecoded
    del upstream.scripts[sid]
    record("upstream-junk", r.status_code)
    if r.status_code == 200:  # headers arrived, then the body broke
        assert b'"error"' in data or data in (b"", b"junk"), data[:200]
    else:
        assert r.status_code in (502, 503), (r.status_code, data[:200])
        assert_openai_error(r, data)


def test_client_disconnects_mid_stream(hostile: Routers, upstream: Upstream) -> None:
    """Clients that hang up mid-stream (20 times, both routers) leave the router healthy."""
    sid = _new_id()
    chunk = b'data: {"choices": []}\n\n'
    upstream.scripts[sid] = Script([chunk] * 2000)
    body = json.dumps({"model": sid, "messages": [], "stream": True}).encode()
    for router in hostile.values():
        for _ in range(10):
            request = (
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n"
                b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            ) + body
            with socket.create_connection(("127.0.0.1", router.port), timeout=5) as sock:
                sock.sendall(request)
                sock.recv(100)
            record("disconnect", 200)
        assert_healthy(router)
    del upstream.scripts[sid]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_upstream_redirect_not_followed(
    hostile: Routers, upstream: Upstream, http: httpx.Client, route: str, status: int
) -> None:
    """A provider answering with a redirect to the metadata service: the router hands the
    3xx back verbatim and makes no second request (its client never follows redirects)."""
    sid = _new_id()
    location = b"location: http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    upstream.scripts[sid] = Script(
        [b"{}"], status=status, content_type=b"application/json", extra_headers=[location]
    )
    upstream.seen_headers.clear()
    body = {"model": sid, "messages": [{"role": "user", "content": "x"}]}
    r = http.post(hostile[route].url + "/v1/chat/completions", json=body)
    del upstream.scripts[sid]
    record("redirect", r.status_code, status)
    assert r.status_code == status
    assert len(upstream.seen_headers) == 1  # one upstream request, no follow-up
    check_upstream_headers(upstream)


def test_router_alive_after_everything(hostile: Routers) -> None:
    for router in hostile.values():
        assert_healthy(router)


HOP_HEADERS = [
    b"connection: x-upstream-hop, keep-alive",
    b"x-upstream-hop: secret-of-the-connection",
    b"keep-alive: timeout=5",
    b"proxy-authenticate: Basic realm=upstream",
    b"set-cookie: session=upstream",
    b"set-cookie2: legacy=upstream",
    b"trailer: x-checksum",
    b"upgrade: h2c",
    b"x-end-to-end: kept",
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_hop_by_hop_response_headers_stop_at_the_router(
    hostile: Routers, upstream: Upstream, http: httpx.Client, route: str, stream: bool
) -> None:
    """RFC 9110 §7.6.1: the upstream connection's fields (the fixed list and any field its
    Connection header names) and its cookies (Set-Cookie, Set-Cookie2) never reach the
    client; end-to-end fields do (passthrough)."""
    sid = _new_id()
    path = b"/v1/messages" if route == "anthropic" else b"/v1/chat/completions"
    base = default_script(path, {"stream": stream})
    upstream.scripts[sid] = Script(
        base.chunks, content_type=base.content_type, extra_headers=HOP_HEADERS
    )
    body = {"model": sid, "messages": [{"role": "user", "content": "x"}], "stream": stream}
    with http.stream("POST", hostile[route].url + "/v1/chat/completions", json=body) as r:
        r.read()
    del upstream.scripts[sid]
    record("hop-by-hop", r.status_code)
    assert r.status_code == 200
    names = {name.lower() for name in r.headers}
    for dropped in ("x-upstream-hop", "keep-alive", "proxy-authenticate", "set-cookie",
                    "set-cookie2", "trailer", "upgrade"):  # fmt: skip
        assert dropped not in names, dropped
    assert "x-upstream-hop" not in r.headers.get("connection", "")
    if route == "openai":
        assert r.headers["x-end-to-end"] == "kept"


@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_headers_the_client_made_hop_by_hop_are_not_forwarded(
    hostile: Routers, upstream: Upstream, route: str
) -> None:
    """A forwardable field (X-Title, X-Request-Id) named in the client's Connection header
    belongs to that connection only: the router does not send it upstream."""
    upstream.seen_headers.clear()
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: router"]
    lines += [b"Authorization: Bearer " + TOKEN.encode()]
    lines += [b"Connection: close, X-Title", b"Connection: x-request-id"]
    lines += [b"X-Title: hop", b"X-Request-Id: hop", b"HTTP-Referer: https://kept.example"]
    lines += [b"Content-Length: %d" % len(VALID_BODY)]
    raw = raw_exchange(hostile[route].port, b"\r\n".join(lines) + b"\r\n\r\n" + VALID_BODY)
    status, _, _ = parse_response(raw)
    record("hop-by-hop", status)
    assert status == 200
    seen = dict(upstream.seen_headers[-1])
    assert b"x-title" not in seen
    assert b"x-request-id" not in seen
    assert seen[b"http-referer"] == b"https://kept.example"
