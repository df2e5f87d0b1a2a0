"""Fixtures for router tests over real sockets (see :mod:`router_harness`).

* ``stub`` — one stub provider process per session (``--record-bodies``).
* ``start_router(env)`` — a ``byollm-router`` process with exactly ``env``; routers with
  the same env are shared across the session.
* ``routers(kind)`` — the shared router for a provider type, aimed at the stub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from router_harness import RouterProcess, StubServer, router_env


@pytest.fixture(scope="session")
def stub() -> Iterator[StubServer]:
    server = StubServer("--record-bodies")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def start_router(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[dict[str, str]], RouterProcess]]:
    routers: dict[frozenset[tuple[str, str]], RouterProcess] = {}
    logs = tmp_path_factory.mktemp("router-logs")

    def start(env: dict[str, str]) -> RouterProcess:
        key = frozenset(env.items())
        if key not in routers:
            routers[key] = RouterProcess(env, logs / f"router-{len(routers)}.log")
        return routers[key]

    yield start
    for router in routers.values():
        router.stop()


@pytest.fixture(scope="session")
def routers(
    stub: StubServer, start_router: Callable[[dict[str, str]], RouterProcess]
) -> Callable[[str], RouterProcess]:
    """``routers(kind)`` → the shared router for a provider type, aimed at the stub."""

    def get(kind: str) -> RouterProcess:
        return start_router(router_env(kind, stub))

    return get
