"""Harness for router tests over real sockets: the stub provider and routers as processes.

* ``stub`` — one stub provider process per session (``tests/stubs/provider.py``,
  ``--record-bodies``); ``stub.requests()`` / ``stub.clear()`` read its request log.
* ``start_router(env)`` — a ``byollm-router`` process with exactly ``env`` (plus PATH);
  routers with the same env are shared across the session, so ask freely.
* ``router_env(kind, stub)`` — the environment the operator would write for a provider
  type (openai, openrouter, groq, ollama, custom, azure, anthropic, managed), aimed at
  the stub. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from stubs.harness import ROUTER_BIN, STUB_SCRIPT, RouterProcess, StubServer

from byollm_dev.controlplane import free_port

# Re-exported for the e2e tests, which import everything router-related from here.
__all__ = [
    "MANAGED_KEY",
    "OPENAI_WIRE_KINDS",
    "PROVIDER_KINDS",
    "ROOT",
    "ROUTER_BIN",
    "STUB_SCRIPT",
    "TOKEN",
    "RouterProcess",
    "StubServer",
    "assert_routers_clean",
    "free_port",
    "recording_stub",
    "router_env",
    "tally",
]

ROOT = Path(__file__).resolve().parents[2]

TOKEN = "router-token-for-tests-0123456789"
MANAGED_KEY = "sk-litellm-virtual-key-tenant"
PROVIDER_KINDS = (
    "openai",
    "openrouter",
    "groq",
    "ollama",
    "custom",
    "azure",
    "anthropic",
    "managed",
)
OPENAI_WIRE_KINDS = ("openai", "openrouter", "groq", "ollama", "custom", "managed")


def tally(counts: Counter[str]) -> tuple[int, str]:
    """The total of ``counts`` and its entries as ``key:count, ...`` (sorted by key)."""
    return sum(counts.values()), ", ".join(f"{k}:{v}" for k, v in sorted(counts.items()))


def assert_routers_clean(routers: Iterable[RouterProcess]) -> None:
    """Every router still runs, and its log shows no traceback and no internal error."""
    for router in routers:
        assert router.proc.poll() is None
        assert "Traceback" not in router.log_text()
        assert '"internal_error"' not in router.log_text()


def recording_stub() -> Iterator[StubServer]:
    """For a fixture to ``yield from``: a stub provider process that records request
    bodies (``--record-bodies``), stopped at teardown."""
    server = StubServer("--record-bodies")
    yield server
    server.stop()


def router_env(kind: str, stub: StubServer, **extra: str) -> dict[str, str]:
    """What the operator writes for ``kind``, aimed at the stub (an in-cluster-like host,
    so the SSRF guard needs the allowlist)."""
    env = {
        "BYOLLM_ROUTER_TOKEN": TOKEN,
        "BYOLLM_TENANT": f"tenant-{kind}",
        "BYOLLM_UPSTREAM_ALLOWLIST": "127.0.0.1",
        "BYOLLM_UPSTREAM_TIMEOUT": "5",
    }
    if kind == "managed":
        env |= {
            "LLM_MODE": "Managed",
            "BYOLLM_MANAGED_URL": f"{stub.url}/v1",
            "BYOLLM_MANAGED_API_KEY": MANAGED_KEY,
        }
    else:
        env |= {
            "LLM_PROVIDER": kind,
            "LLM_BASE_URL": stub.url if kind == "azure" else f"{stub.url}/v1",
            "LLM_API_KEY": f"sk-{kind}-test-key-000",
            "LLM_MODEL": "stub-model",
        }
        if kind == "azure":
            env["LLM_AZURE_API_VERSION"] = "2024-10-21"
    env.update(extra)
    return env
