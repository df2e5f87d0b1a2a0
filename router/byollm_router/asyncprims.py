"""httpcore's HTTP/1.1 path on plain asyncio primitives (no anyio checkpoints).

httpcore 1.0 takes its async locks, events and cancellation shields from anyio. On asyncio
each anyio ``Lock.acquire`` and each wait on an already-set ``Event`` yields to the event
loop once (a "checkpoint"), and each shield enters and leaves an anyio cancel scope: per
proxied request three lock acquisitions, one event wait and three shields — three to four
extra event-loop turns and ~40 µs of CPU. The asyncio equivalents do not yield on their
fast paths.

The shields are dropped, not replaced: an anyio shield only defers cancellation coming from
anyio cancel scopes, and the router opens none (its network backend and timeouts are plain
asyncio; a native ``Task.cancel`` goes through an anyio shield regardless). Installed by
the router's server process only (``main.py``), for the HTTP/1.1 connection, the pool and
the connection wrapper — HTTP/2 keeps httpcore's own primitives — and only on the httpcore
release these module names were read from (``pool.MIRRORED``, pinned in
router/pyproject.toml).
"""

from __future__ import annotations

import asyncio
import types

import httpcore

from byollm_router.pool import MIRRORED


class Lock:
    """``httpcore._synchronization.AsyncLock`` on ``asyncio.Lock``."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Lock:
        await self._lock.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        self._lock.release()


class Event:
    """``httpcore._synchronization.AsyncEvent`` on ``asyncio.Event`` (a timeout is a
    ``PoolTimeout``, as there)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's)
        if self._event.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError as exc:
            raise httpcore.PoolTimeout(str(exc) or "timed out waiting for a connection") from exc


class NoShield:
    """``httpcore._synchronization.AsyncShieldCancellation`` without anyio (see above)."""

    __slots__ = ()

    def __enter__(self) -> NoShield:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        return None


def install() -> bool:
    """Swap the primitives into httpcore's HTTP/1.1 modules; False (and nothing changed)
    on any httpcore release but the mirrored one."""
    if httpcore.__version__ != MIRRORED:
        return False
    from httpcore._async import connection, connection_pool, http11

    for module, name, value in (
        (connection, "AsyncLock", Lock),
        (http11, "AsyncLock", Lock),
        (http11, "AsyncShieldCancellation", NoShield),
        (connection_pool, "AsyncShieldCancellation", NoShield),
        (connection_pool, "AsyncEvent", Event),
    ):
        assert hasattr(module, name), (module.__name__, name)
        setattr(module, name, value)
    return True
