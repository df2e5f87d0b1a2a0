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

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from stubs.harness import StubServer

from byollm_operator.controlplane import free_port

ROOT = Path(__file__).resolve().parents[2]
ROUTER_BIN = Path(sys.executable).parent / "byollm-router"

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


class RouterProcess:
    """A running ``byollm-router``; stdout+stderr go to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.token = env.get("BYOLLM_ROUTER_TOKEN", "")
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._openai: openai.OpenAI | None = None
        full_env = {"PATH": os.environ.get("PATH", ""), **env}
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(ROUTER_BIN), "--host", "127.0.0.1", "--port", str(self.port)],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"router exited: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"router did not become ready: {self.log_path.read_text()}")
            time.sleep(0.05)

    def openai(self) -> openai.OpenAI:
        """A shared OpenAI SDK client for this router (no retries; closed on stop)."""
        if self._openai is None:
            self._openai = openai.OpenAI(base_url=self.base_url, api_key=self.token, max_retries=0)
        return self._openai

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def log_text(self) -> str:
        return self.log_path.read_text()

    def log_lines(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self._openai is not None:
            self._openai.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


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
