"""httpcore's connection pool with a linear-time bookkeeping pass.

httpcore 1.0's ``AsyncConnectionPool._assign_requests_to_connections`` runs twice per
request and, for every idle connection, builds a list of *all* connections just to take
its length: O(n²) ``is_idle()`` calls per request for n pooled connections. Profiling the
router under 16 concurrent clients (``tests/bench/profile_router.py``) showed ~110 such
calls per request and ~15 % of the router's CPU in that scan; at a few hundred
connections it would dominate. This subclass does the same thing in O(n): same
decisions, same order, same connections closed (a property test checks it against the
stock method). Used only with the httpcore series it was written against.
"""

from __future__ import annotations

from typing import Any

import httpcore

COMPATIBLE = httpcore.__version__.startswith("1.0.")


class LinearPool(httpcore.AsyncConnectionPool):
    """``httpcore.AsyncConnectionPool`` whose assignment pass is linear in pool size."""

    def _assign_requests_to_connections(self) -> list[Any]:
        closing: list[Any] = []
        conns = self._connections
        # Closed, expired and surplus idle connections go first. (httpcore compares the
        # count of *all* connections with the keep-alive limit; kept as is.)
        for connection in list(conns):
            if connection.is_closed():
                conns.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle() and len(conns) > self._max_keepalive_connections
            ):
                conns.remove(connection)
                closing.append(connection)

        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            reuse = next(
                (c for c in conns if c.can_handle_request(origin) and c.is_available()), None
            )
            if reuse is not None:
                pool_request.assign_to_connection(reuse)
                continue
            if len(conns) < self._max_connections:
                connection = self.create_connection(origin)
                conns.append(connection)
                pool_request.assign_to_connection(connection)
                continue
            idle = next((c for c in conns if c.is_idle()), None)
            if idle is not None:
                conns.remove(idle)
                closing.append(idle)
                connection = self.create_connection(origin)
                conns.append(connection)
                pool_request.assign_to_connection(connection)
        return closing


def pool_class() -> type[httpcore.AsyncConnectionPool]:
    """``LinearPool`` on the httpcore series it mirrors; the stock pool otherwise."""
    return LinearPool if COMPATIBLE else httpcore.AsyncConnectionPool
