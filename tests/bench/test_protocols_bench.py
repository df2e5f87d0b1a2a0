"""Smoke test of ``protocols_bench.py`` in short mode: it runs and every row has finite
figures. Never asserts on a number's size (shared, noisy machines)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.bench
def test_protocols_bench_short(tmp_path: Path) -> None:
    out = tmp_path / "protocols.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "protocols_bench.py"), "--short", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["route"], r["provider"]) for r in rows} >= {
        ("responses", "anthropic"),
        ("messages", "openai"),
        ("messages", "anthropic"),
        ("responses", "azure"),
    }
    for row in rows:
        for key in ("overhead_p50_ms", "overhead_p90_ms", "round_trip_p50_ms", "vs_chat"):
            assert math.isfinite(row[key]), row
        assert row["n"] == 10
