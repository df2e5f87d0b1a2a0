"""The client tools ``hack/tools.sh`` builds pinned from their Go modules (helm,
kubeconform, kubectl, kstatus), for tests."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@cache
def tool(name: str) -> str:
    """Path of a client tool built pinned by ``hack/tools.sh`` (cached in
    ~/.cache/byollm/tools); the calling test is skipped, loudly, when it cannot be built."""
    try:
        out = subprocess.run(
            [str(ROOT / "hack" / "tools.sh"), name],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"TOOL BUILD FAILED ({name}): {(getattr(e, 'stderr', '') or '')[-500:]}")
    return out.stdout.strip()
