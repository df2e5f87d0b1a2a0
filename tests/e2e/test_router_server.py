"""The router's own HTTP/1.1 server over real sockets: the parts of HTTP a proxy in front
of SDKs, curl and load balancers meets (pipelining, ``Expect: 100-continue``, HEAD,
chunked request bodies, malformed requests) and the graceful stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_harness import TOKEN, RouterProcess, StubServer, router_env

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
AUTH = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"


@pytest.fixture
def router(stub: StubServer, tmp_path: Path) -> Iterator[RouterProcess]:
    """A router of its own (these tests stop it or hold its connections)."""
    process = RouterProcess(router_env("openai", stub), tmp_path / "router.log")
    yield process
    process.stop()


def connect(router: RouterProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", router.port), timeout=10)


class Reader:
    """Reads whole responses (Content-Length or chunked) off one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def response(self, head: bool = False) -> tuple[int, dict[bytes, bytes], bytes]:
        """The next response; ``head``: it answers a HEAD request (no body follows)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        block, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = block.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])
        }
        if head or status == 100:
            return status, headers, b""
        if b"content-length" in headers:
            size = int(headers[b"content-length"])
            while len(self.buf) < size:
                self._fill()
            body, self.buf = self.buf[:size], self.buf[size:]
            return status, headers, body
        body = b""
        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(line, 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2 :]
                if size == 0:
                    return status, headers, body
        return status, headers, body

    def closed(self) -> bool:
        try:
            self._fill()
        except (EOFError, ConnectionResetError):
            return True
        return False


def chat_request(extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n" + AUTH + extra
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
    )  # fmt: skip


def test_pipelined_requests_are_answered_in_order(router: RouterProcess) -> None:
    with connect(router) as sock:
        sock.sendall(
            chat_request()
            + b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n"
            + b"GET /nowhere HTTP/1.1\r\nHost: r\r\n\r\n"
            + b"HEAD /readyz HTTP/1.1\r\nHost: r\r\n\r\n"
            + b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n"
        )
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 200
        assert json.loads(body)["object"] == "chat.completion"
        assert reader.response()[::2] == (200, b'{"status":"ok"}')
        status, _, body = reader.response()
        assert status == 404
        assert json.loads(body)["error"]["code"]
        status, headers, _ = reader.response(head=True)
        assert status == 200
        assert headers[b"content-length"] == b"15"  # the GET's length, and no body
        assert reader.response()[::2] == (200, b'{"status":"ok"}')


def test_expect_100_continue_gets_its_interim_answer(router: RouterProcess) -> None:
    """curl sends ``Expect: 100-continue`` for bodies over 1 KiB and waits for it."""
    head, _, body = chat_request(b"Expect: 100-continue\r\n").partition(b"\r\n\r\n")
    with connect(router) as sock:
        sock.sendall(head + b"\r\n\r\n")
        reader = Reader(sock)
        status, _, _ = reader.response()
        assert status == 100
        sock.sendall(body)
        status, _, answer = reader.response()
        assert status == 200
        assert json.loads(answer)["object"] == "chat.completion"


def test_chunked_request_body_is_read_whole(router: RouterProcess, stub: StubServer) -> None:
    pieces = [BODY[:10], BODY[10:40], BODY[40:]]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with connect(router) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n" + AUTH
            + b"Transfer-Encoding: chunked\r\n\r\n" + chunked
        )  # fmt: skip
        status, _, answer = Reader(sock).response()
    assert status == 200, answer
    assert json.loads(answer)["object"] == "chat.completion"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ],
)
def test_malformed_requests_get_an_openai_shaped_400_and_a_close(
    router: RouterProcess, request_bytes: bytes
) -> None:
    with connect(router) as sock:
        sock.sendall(request_bytes)
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert status == 400
        assert headers[b"connection"] == b"close"
        assert json.loads(body)["error"]["code"] == "malformed_request"
        assert reader.closed()
    assert still_serves(router)


def still_serves(router: RouterProcess) -> bool:
    with connect(router) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
        return Reader(sock).response()[0] == 200


def test_sigterm_finishes_the_stream_in_flight_then_exits_0(router: RouterProcess) -> None:
    """A rolling update: SIGTERM closes idle connections at once, refuses new ones and lets
    the answer in flight finish whole before the process exits."""
    with connect(router) as idle:
        _sigterm_while_streaming(router, idle)
    assert router.proc.wait(timeout=15) == 0
    time.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        connect(router).close()
    assert "Traceback" not in router.log_text()


def _sigterm_while_streaming(router: RouterProcess, idle: socket.socket) -> None:
    """SIGTERM while ``idle`` waits on keep-alive and a slow stream is in flight."""
    idle_reader = Reader(idle)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
    assert idle_reader.response()[0] == 200
    stream = router.openai().chat.completions.create(
        model="stub-slow", messages=[{"role": "user", "content": "a long answer"}], stream=True
    )
    chunks = iter(stream)
    first = next(chunks)
    assert first.choices
    router.proc.send_signal(signal.SIGTERM)
    assert idle_reader.closed(), "an idle keep-alive connection outlived the stop"
    rest = list(chunks)  # the SDK ends at [DONE]; a cut stream raises
    assert len(rest) > 10
    assert rest[-1].choices[0].finish_reason == "stop"
