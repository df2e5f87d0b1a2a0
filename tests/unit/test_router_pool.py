"""``byollm_router.pool.LinearPool`` against httpcore's stock pool.

When it sweeps, both assignment passes run on identical random pool states (fake
connections and queued requests): the closed connections, the surviving pool and every
request's connection must match. Between sweeps it must still never hand a request to an
expired connection (the server closed it), and otherwise reuse the first available one.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpcore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm_router import guard
from byollm_router.pool import COMPATIBLE, LinearPool, pool_class

ORIGINS = [httpcore.URL(f"http://h{i}.example:80/").origin for i in range(2)]


class FakeConn:
    def __init__(self, ident: int, origin: Any, state: dict[str, bool]) -> None:
        self.ident, self.origin, self.s = ident, origin, state

    def is_closed(self) -> bool:
        return self.s["closed"]

    def has_expired(self) -> bool:
        return self.s["expired"]

    def is_idle(self) -> bool:
        return self.s["idle"]

    def is_available(self) -> bool:
        return self.s["available"]

    def can_handle_request(self, origin: Any) -> bool:
        return bool(origin == self.origin)


class FakeRequest:
    def __init__(self, origin: Any, queued: bool) -> None:
        self.request = type("R", (), {"url": type("U", (), {"origin": origin})()})()
        self.queued = queued
        self.conn: FakeConn | None = None

    def is_queued(self) -> bool:
        return self.queued and self.conn is None

    def assign_to_connection(self, conn: FakeConn) -> None:
        self.conn = conn


conn_state = st.fixed_dictionaries(
    {
        "closed": st.booleans(),
        "expired": st.booleans(),
        "idle": st.booleans(),
        "available": st.booleans(),
        "origin": st.integers(0, 1),
    }
)
request_state = st.tuples(st.integers(0, 1), st.booleans())


def _run(
    method: Any,
    conns: list[dict[str, Any]],
    reqs: list[tuple[int, bool]],
    limits: tuple[int, int],
    sweep_interval: float = 0.0,
) -> tuple[list[int], list[int], list[int | None]]:
    pool = object.__new__(LinearPool)
    pool.sweep_interval = sweep_interval
    pool._last_sweep = time.monotonic()
    counter = itertools.count(1000)
    pool._connections = [  # type: ignore[attr-defined]
        FakeConn(i, ORIGINS[c["origin"]], c) for i, c in enumerate(conns)
    ]
    requests = [FakeRequest(ORIGINS[o], q) for o, q in reqs]
    pool._requests = requests  # type: ignore[attr-defined]
    pool._max_connections, pool._max_keepalive_connections = limits  # type: ignore[attr-defined]
    fresh = {"closed": False, "expired": False, "idle": False, "available": False}
    pool.create_connection = lambda origin: FakeConn(next(counter), origin, fresh)  # type: ignore[method-assign]
    closing = method(pool)
    return (
        [c.ident for c in closing],
        [c.ident for c in pool._connections],  # type: ignore[attr-defined]
        [r.conn.ident if r.conn else None for r in requests],
    )


@given(
    conns=st.lists(conn_state, max_size=12),
    reqs=st.lists(request_state, max_size=6),
    max_conn=st.integers(1, 14),
    max_keep=st.integers(0, 14),
)
@settings(max_examples=400, deadline=None)
def test_same_decisions_as_httpcore(
    conns: list[dict[str, Any]], reqs: list[tuple[int, bool]], max_conn: int, max_keep: int
) -> None:
    stock = httpcore.AsyncConnectionPool._assign_requests_to_connections
    ours = LinearPool._assign_requests_to_connections
    limits = (max_conn, max_keep)
    assert _run(ours, conns, reqs, limits) == _run(stock, conns, reqs, limits)


@given(conns=st.lists(conn_state, max_size=12), reqs=st.lists(request_state, max_size=6))
@settings(max_examples=400, deadline=None)
def test_between_sweeps_never_reuses_an_expired_connection(
    conns: list[dict[str, Any]], reqs: list[tuple[int, bool]]
) -> None:
    limits = (100, 14)  # room for new connections, under the keep-alive limit: no sweep
    closing, pool, assigned = _run(
        LinearPool._assign_requests_to_connections, conns, reqs, limits, sweep_interval=60
    )
    for ident in assigned:
        if ident is not None and ident < 1000:  # an existing connection was reused
            c = conns[ident]
            assert c["available"]
            assert not c["expired"]
    for ident in closing:  # only expired (available) ones are closed, none in use
        assert conns[ident]["expired"]
        assert conns[ident]["available"]
    assert set(pool).isdisjoint(closing)


def test_router_transport_uses_it() -> None:
    assert COMPATIBLE, f"httpcore {httpcore.__version__}: review byollm_router/pool.py"
    transport = guard.build_transport(guard.Allowlist.parse(""))
    assert type(transport._pool) is pool_class() is LinearPool


@pytest.mark.parametrize("n", [50])
async def test_real_requests_through_the_pool(n: int) -> None:
    """End to end on a real socket: keep-alive reuse works (one connection for n calls)."""
    import asyncio
    import contextlib

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    accepted = 0
    finished = asyncio.Event()

    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        try:
            await handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # Close our side before the loop ends, or the transport leaks (ResourceWarning).
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            finished.set()

    server = await asyncio.start_server(counting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = LinearPool(max_connections=4, max_keepalive_connections=2)
    async with server:
        async with pool:
            for _ in range(n):
                r = await pool.request("GET", f"http://127.0.0.1:{port}/")
                assert r.status == 200
        await asyncio.wait_for(finished.wait(), 5)
    assert accepted == 1
