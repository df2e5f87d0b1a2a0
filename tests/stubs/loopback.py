"""A scriptable HTTP/1.1 upstream on 127.0.0.1 for in-process router tests: records each
request (head fields, body, the connection it came on) and answers with the raw bytes the
test scripts, so framing, interim answers and early closes are exactly what the test says.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class SafetyNet:
    """An upstream client's ``before_connect``: records every address a socket is about to
    be opened to and refuses (raises before connecting) all but ``allowed``."""

    def __init__(self, allowed: tuple[str, ...] = ("127.0.0.1", "::1")) -> None:
        self.allowed = allowed
        self.connects: list[tuple[str, int]] = []

    def __call__(self, ip: str, port: int) -> None:
        if ip not in self.allowed:
            raise AssertionError(f"test safety net: refused to connect to {ip}")
        self.connects.append((ip, port))


@dataclass
class Seen:
    """One request as it reached the upstream."""

    line: str
    headers: dict[str, str]
    body: bytes
    connection: int


def answer(status: int = 200, body: bytes = b'{"ok":true}', *headers: tuple[str, str]) -> bytes:
    """A complete answer with Content-Length."""
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


@dataclass
class Upstream:
    """``reply(seen)`` gives the raw answer bytes; None closes the connection unanswered.
    ``close_after`` closes the connection after answering."""

    reply: Callable[[Seen], bytes | None] = lambda _seen: answer()
    close_after: bool = False
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    sni: list[str | None] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hosts(self) -> list[str]:
        """The Host field of each request, in order."""
        return [s.headers["host"] for s in self.seen]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                fields = {}
                for line in head[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                seen = Seen(head[0], fields, body, conn)
                self.seen.append(seen)
                out = self.reply(seen)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serve(up: Upstream, tls: ssl.SSLContext | None = None) -> AsyncIterator[Upstream]:
    """Run ``up`` on 127.0.0.1 (TLS with ``tls``, recording the SNI each client sent)."""
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: up.sni.append(name)
    server = await asyncio.start_server(up._handle, "127.0.0.1", 0, ssl=tls)
    up.port = server.sockets[0].getsockname()[1]
    async with server:
        yield up
