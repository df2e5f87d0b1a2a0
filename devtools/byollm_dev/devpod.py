"""Run ``byollm-router`` as a local "pod" for ``byollm dev``, with a stand-in cluster DNS.

In a cluster, ``stub.byollm-dev.svc`` resolves (CoreDNS) to a Service ClusterIP; on a laptop
it resolves nowhere. This wrapper answers ``*.svc`` / ``*.svc.cluster.local`` names with
127.0.0.1 -- where ``byollm dev`` serves them -- and then runs the router's own ``main``
unchanged, with the environment it was given. Every other name resolves normally, and the
router's SSRF guard still checks every answer against ``BYOLLM_UPSTREAM_ALLOWLIST``.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, Final

from byollm_router import forbidden, guard
from byollm_router import main as router_main

SUFFIXES: Final = forbidden.IN_CLUSTER_SUFFIXES
_real_getaddrinfo = socket.getaddrinfo
_real_resolver = guard.system_resolver


def _is_service(host: str) -> bool:
    return host.lower().rstrip(".").endswith(SUFFIXES)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, str) and _is_service(host):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


async def _resolver(host: str, port: int) -> list[str]:
    if _is_service(host):
        return ["127.0.0.1"]
    return await _real_resolver(host, port)


def main() -> int:
    socket.getaddrinfo = _getaddrinfo
    guard.system_resolver = _resolver
    sys.argv[0] = "byollm-router"
    router_main.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
