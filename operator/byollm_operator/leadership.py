"""The write fence: a replica writes only while it surely holds the leader Lease.

The leader renews the Lease every ``retry_period``; a follower takes over only after the
Lease went unrenewed for ``lease_duration`` (or after it was deleted). The fence is open
for ``renew_deadline`` (< ``lease_duration``) after the start of the last successful
renewal, and shuts at once when a read of the Lease shows another holder or no Lease. So
a replica cut off from the API server, or whose Lease was taken or deleted, stops
writing before any other replica starts (a new leader also waits one retry period before
acting, for the old one's next renewal to see it). :func:`check` is what the Kubernetes
layer calls before each write.
"""

from __future__ import annotations

import threading
import time

from byollm.kube import WriteFenced


class Fence:
    """Open while the Lease is surely ours (see module doc); thread-safe."""

    def __init__(self, renew_deadline: float) -> None:
        self.renew_deadline = renew_deadline
        self._guard = threading.Lock()
        self._until = 0.0

    def renewed(self, started: float) -> None:
        """A renewal (or acquisition) begun at monotonic time ``started`` succeeded."""
        with self._guard:
            self._until = max(self._until, started + self.renew_deadline)

    def shut(self) -> None:
        """The Lease is gone or held by another replica: no more writes."""
        with self._guard:
            self._until = 0.0

    def is_open(self) -> bool:
        with self._guard:
            return time.monotonic() < self._until


_current: Fence | None = None


def install(fence: Fence | None) -> None:
    """Make ``fence`` guard this process's writes (None: no leader election, no fence)."""
    global _current
    _current = fence


def check() -> None:
    """Raise WriteFenced unless this process may write now."""
    fence = _current
    if fence is not None and not fence.is_open():
        raise WriteFenced("not holding the leader Lease: write not sent")
