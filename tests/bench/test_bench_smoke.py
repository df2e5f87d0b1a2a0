"""Smoke test of the benchmark harness in short mode: it runs and produces figures.

Never asserts on a number's size (CI machines are shared and noisy); only that each
measurement exists and is finite. The full run is ``hack/bench.sh``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _run(script: str, *args: str, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


@pytest.mark.bench
def test_router_bench_short(tmp_path: Path) -> None:
    out = tmp_path / "router.json"
    _run("router_bench.py", "--short", "--out", str(out), timeout=60)
    data = json.loads(out.read_text())
    assert data["scenarios"], data
    for sc in data["scenarios"]:
        for name in ("direct", "goproxy", "bare", "byollm"):
            t = sc["targets"][name]
            assert "error" not in t, (name, t)
            assert t["load"]["requests"] > 0, (name, t)
            assert _finite(t["load"]["rps"]), (name, t)
            assert t["load"]["errors"] + t["load"]["non2xx"] == 0, (name, t)
            assert _finite(t["c1"]["p50_us"]), (name, t)
            if sc["stream"]:
                assert t["ttft"]["incomplete"] == 0, (name, t)
                assert _finite(t["ttft"]["ttft_p50_ms"]), (name, t)
        for name in ("goproxy", "bare", "byollm"):
            t = sc["targets"][name]
            for key in ("peak_rss_mb", "idle_rss_mb", "cpu_us_per_req", "start_s"):
                assert _finite(t[key]), (name, key, t)
    md = tmp_path / "benchmarks.md"
    _run("report.py", "--router", str(out), "--md", str(md), timeout=60)
    text = md.read_text()
    assert "| 0 ms, JSON | **byollm router** |" in text, text
    assert "router p50 added latency" in text
    assert "| 0 ms, JSON | Go ReverseProxy (floor) |" in text, text
    assert "router CPU/request vs Go proxy" in text


@pytest.mark.bench
@pytest.mark.cluster
def test_operator_bench_short(tmp_path: Path) -> None:
    out = tmp_path / "operator.json"
    _run("operator_bench.py", "--short", "--floor", "--out", str(out), timeout=180)
    data = json.loads(out.read_text())
    if data.get("unavailable"):
        pytest.skip(f"CONTROL PLANE UNAVAILABLE: {data['unavailable']}")
    (size,) = data["sizes"]
    assert size["n"] == 5
    for key in ("create_to_synced_s", "create_to_ready_s", "change_to_new_rs_s"):
        assert size[key]["n"] > 0, (key, size[key])
        assert _finite(size[key]["p99"]), (key, size[key])
    assert _finite(size["all_ready_s"])
    assert _finite(size["rss_peak_mb"])
    assert isinstance(size["idle"]["writes"], int)
    assert size["idle"]["window_s"] >= 2 * size["idle"]["resync_period_s"]
    assert size["idle"]["resync_passes"] >= 1, size["idle"]  # zero writes *with* a resync
    (floor,) = data["floor"]  # the same tenants with no operator: the cluster's own floor
    assert floor["n"] == 5
    assert _finite(floor["all_ready_s"])
    assert floor["change_to_new_rs_s"]["n"] == size["change_to_new_rs_s"]["n"]
    md = tmp_path / "benchmarks.md"
    _run("report.py", "--operator", str(out), "--md", str(md), timeout=60)
    text = md.read_text()
    assert "| 5 |" in text
    assert "Floor at N=5" in text, text
