"""The router's own added time, made visible: total time minus time spent on the upstream.

Upstream time is the wait for the provider's response headers plus every wait for its next
body chunk (:class:`TimedStream`); what remains is the router's — reading the request,
auto-routing (its classifier call included: the router chose to make it), translation and
writing to the client. It goes into the ``byollm_router_overhead_seconds`` histogram per
route and provider, and, as far as known when the response starts, into the
``x-byollm-overhead-ms`` header. Metadata only: no token counts, no content.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

import httpx

HEADER = b"x-byollm-overhead-ms"


class Clock(Protocol):
    """Where the upstream wait is added up (the app's per-request context)."""

    upstream_s: float | None


class TimedStream(httpx.AsyncByteStream):
    """An upstream response body that adds the time spent waiting for each chunk to
    ``clock.upstream_s``."""

    __slots__ = ("_clock", "_inner")

    def __init__(self, inner: httpx.AsyncByteStream | httpx.SyncByteStream, clock: Clock) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner
        self._clock = clock

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        clock = self._clock
        while True:
            began = time.perf_counter()
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                clock.upstream_s = (clock.upstream_s or 0.0) + time.perf_counter() - began
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def header(began: float, upstream_s: float | None) -> tuple[bytes, bytes]:
    """The ``x-byollm-overhead-ms`` field: time since ``began`` minus the upstream waits."""
    added = time.perf_counter() - began - (upstream_s or 0.0)
    return HEADER, f"{max(added, 0.0) * 1000.0:.3f}".encode()
