"""Per-object retry with backoff after a failed reconcile.

A reconcile that failed for a passing reason (API server unreachable, 429, 5xx, a write
fenced off) would otherwise wait for the next trigger: a watch event that may never come,
or the periodic resync (minutes). Each failing object is tried again after 0.5 s, then
1, 2, 4, 8, 10, 10 ... s until a reconcile succeeds; one pending retry per object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

Key = tuple[str, str]


class Retries:
    """Backoff state per object; used only from the operator's event loop."""

    def __init__(self, first: float = 0.5, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self._delay: dict[Key, float] = {}
        self._pending: dict[Key, asyncio.Task[None]] = {}

    def delay(self, key: Key) -> float | None:
        """The delay before the pending retry of ``key`` (None: none pending)."""
        return self._delay.get(key) if key in self._pending else None

    def failed(self, key: Key, again: Callable[[], Awaitable[None]]) -> float:
        """Schedule ``again()`` after the next backoff delay; returns that delay."""
        delay = min(self.cap, self._delay[key] * 2) if key in self._delay else self.first
        self._delay[key] = delay
        if key not in self._pending:
            self._pending[key] = asyncio.create_task(self._later(key, delay, again))
        return delay

    def succeeded(self, key: Key) -> None:
        self._delay.pop(key, None)

    async def _later(self, key: Key, delay: float, again: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            self._pending.pop(key, None)
        await again()

    async def close(self) -> None:
        self._delay.clear()
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
