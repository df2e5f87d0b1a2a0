"""Fixtures for router tests over real sockets (see :mod:`router_harness`).

* ``stub`` — one stub provider process per session (``--record-bodies``).
* ``start_router(env)`` — a ``byollm-router`` process with exactly ``env``; routers with
  the same env are shared across the session.
* ``routers(kind)`` — the shared router for a provider type, aimed at the stub.
* ``local_model`` — the real local model's server (``model`` tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from router_harness import RouterProcess, StubServer, recording_stub, router_env

from byollm_dev import localmodel
from byollm_dev.localmodel import ModelServer


@pytest.fixture(scope="session")
def stub() -> Iterator[StubServer]:
    yield from recording_stub()


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


# --- the real local model (``model`` tests) -----------------------------------------------

_MODEL: dict[str, str | None] = {"unavailable": None}


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """SmolLM2-135M-Instruct on llama-cpp-python's server (hack/model.sh, cached; hack/test.sh
    builds it up front). Skips with one loud line when it cannot be built here."""
    if _MODEL["unavailable"]:
        pytest.skip(_MODEL["unavailable"])
    try:
        built = localmodel.build()
        with (tmp_path_factory.mktemp("model") / "server.log").open("wb") as log:
            server = localmodel.start(built, log)  # the child keeps its own copy of the fd
        server.wait_ready()
    except localmodel.ModelUnavailable as exc:
        _MODEL["unavailable"] = f"LOCAL MODEL UNAVAILABLE, model tests skipped: {exc}"
        pytest.skip(_MODEL["unavailable"])
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _MODEL["unavailable"]:
        terminalreporter.write_line("!" * 78, red=True, bold=True)
        terminalreporter.write_line(_MODEL["unavailable"], red=True, bold=True)
        terminalreporter.write_line("!" * 78, red=True, bold=True)
