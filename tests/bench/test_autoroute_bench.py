"""Smoke test: the auto-router benchmark runs and prints its figures (never asserts timing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("autoroute_bench.py")


@pytest.mark.bench
def test_autoroute_bench_short_prints_figures() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--short"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = proc.stdout
    rows = [line for line in out.splitlines() if line.startswith(("vision", "longContext", "no "))]
    assert len(rows) == 5, out
    number = r"-?\d+\.\d+"
    for row in rows:
        assert len(re.findall(number, row)) == 4, row  # fixed, auto, added, ratio
    assert re.search(rf"worst added: {number} µs", out), out
