"""Start and drive the stub provider (``tests/stubs/provider.py``) as a real process.

Shared by the router e2e tests, the operator/security integration tests and the benches.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

STUB_SCRIPT = Path(__file__).resolve().with_name("provider.py")


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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
