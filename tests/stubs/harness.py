"""Start and drive the stub provider (``tests/stubs/provider.py``) and routers as processes.

Shared by the router e2e tests, the operator/security integration tests and the benches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai

from byollm_dev.controlplane import free_port, stop_process

STUB_SCRIPT = Path(__file__).resolve().with_name("provider.py")
ROUTER_BIN = Path(sys.executable).parent / "byollm-router"


class StubServer:
    """A running ``tests/stubs/provider.py`` process."""

    def __init__(self, *args: str, log_path: Path | None = None) -> None:
        self._log = log_path.open("wb") if log_path is not None else None
        self.proc = subprocess.Popen(
            [sys.executable, str(STUB_SCRIPT), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"stub did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = httpx.get(f"{self.url}/_stub/requests").json()["requests"]
        return data

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_stub/requests")

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            log = self.requests()
            if predicate(log) or time.monotonic() > deadline:
                return log
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.proc, grace=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()


class RouterProcess:
    """A running ``byollm-router`` with exactly ``env`` (plus PATH); output to ``log_path``.

    ``command`` replaces the console script (e.g. a wrapper that pins test DNS answers).
    """

    def __init__(
        self, env: dict[str, str], log_path: Path, command: Sequence[str] | None = None
    ) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.token = env.get("BYOLLM_ROUTER_TOKEN", "")
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._openai: openai.OpenAI | None = None
        self._clients: list[anthropic.Anthropic] = []
        full_env = {"PATH": os.environ.get("PATH", ""), **env}
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*(command or [str(ROUTER_BIN)]), "--host", "127.0.0.1", "--port", str(self.port)],
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

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        """An anthropic SDK client for this router (no retries; the router token as its
        api_key unless given; closed on stop, so no socket is left to the GC)."""
        kwargs.setdefault("api_key", self.token)
        client = anthropic.Anthropic(base_url=self.url, max_retries=0, **kwargs)
        self._clients.append(client)
        return client

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
        for client in self._clients:
            client.close()
        stop_process(self.proc)
        self._log.close()
