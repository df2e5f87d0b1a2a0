"""A/B of the byollm router between git revisions, in one run on one machine.

    python tests/bench/ab_router.py REV [REV ...] [--rounds 3] [--seconds 4] [--stream] [--go]

Each revision's ``router/`` is exported with ``git archive`` into ``build/bench/ab/`` and
run by this venv's interpreter with that copy first on ``PYTHONPATH`` (dependencies are the
venv's). Rounds alternate between the revisions (A, B, …, A, B, …) against one stub
upstream so machine noise falls on all; per revision the medians of: added p50 at one
connection (vs. the stub direct), req/s and CPU µs/request at 32 connections, idle RSS,
start time, and with ``--stream`` the added time to first token. ``--go`` adds the Go
reverse proxy (the compiled floor) to every round. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import RESULTS_DIR, ROOT, tree_cpu_s, tree_rss_mb
from router_bench import TOKEN, load, start_stub, start_target, ttft


def export(rev: str) -> Path:
    sha = subprocess.run(
        ["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = RESULTS_DIR / "ab" / sha[:12]
    if not (dest / "router").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "router"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "router"


def one(src: Path | None, stub_port: int, stream: bool, seconds: int, logs: Path) -> dict[str, Any]:
    """One revision's figures (``src`` None: the Go reverse proxy, the compiled floor)."""
    if src is None:
        svc, port, token, start_s = start_target("goproxy", stub_port, logs, None)
    else:
        env = {"PYTHONPATH": str(src)}
        svc, port, token, start_s = start_target("byollm", stub_port, logs, None, env)
    try:
        load(port, token, stream, 4, 1)
        time.sleep(0.3)
        idle = tree_rss_mb(svc.pid)
        c1 = load(port, token, stream, 1, seconds)
        cpu0 = tree_cpu_s(svc.pid)
        thr = load(port, token, stream, 32, seconds)
        cpu = tree_cpu_s(svc.pid) - cpu0
        first = asyncio.run(ttft(port, token, 200))["ttft_p50_ms"] if stream else 0.0
        return {
            "ttft_ms": first,
            "p50_us": c1["p50_us"],
            "p99_us": c1["p99_us"],
            "rps": thr["rps"],
            "cpu_us": cpu / thr["requests"] * 1e6,
            "idle_rss_mb": idle,
            "load_rss_mb": tree_rss_mb(svc.pid),
            "start_s": start_s,
        }
    finally:
        svc.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("revs", nargs="+", help="git revisions, oldest first")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=4)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--go", action="store_true", help="the Go reverse proxy in every round too")
    a = p.parse_args(argv)
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    revs: dict[str, Path | None] = {
        f"{chr(65 + i)} {rev}": export(rev) for i, rev in enumerate(a.revs)
    }
    if a.go:
        revs["Go reverse proxy"] = None
    stub, stub_port = start_stub(0, logs)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in revs}
    direct: list[float] = []
    direct_ttft: list[float] = []
    try:
        for _ in range(a.rounds):
            direct.append(load(stub_port, TOKEN, a.stream, 1, a.seconds)["p50_us"])
            if a.stream:
                direct_ttft.append(asyncio.run(ttft(stub_port, TOKEN, 200))["ttft_p50_ms"])
            for name, src in revs.items():
                runs[name].append(one(src, stub_port, a.stream, a.seconds, logs))
    finally:
        stub.stop()
    d50 = statistics.median(direct)
    print(f"{'stream' if a.stream else 'json'}: direct p50 {d50 / 1e3:.3f} ms")
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        ratio = ""
        if a.go and name != "Go reverse proxy":
            go = statistics.median(r["p50_us"] for r in runs["Go reverse proxy"]) - d50
            ratio = f" ({(med['p50_us'] - d50) / go:.2f}x Go)"
        print(
            f"{name:<20} added p50 {(med['p50_us'] - d50) / 1e3:.3f} ms{ratio} | "
            f"p99 {med['p99_us'] / 1e3:.2f} ms | {med['rps']:.0f} req/s | "
            f"cpu {med['cpu_us']:.0f} us/req | idle {med['idle_rss_mb']:.1f} MB | "
            f"load {med['load_rss_mb']:.1f} MB | start {med['start_s']:.3f} s"
            + (
                f" | TTFT added {med['ttft_ms'] - statistics.median(direct_ttft):.3f} ms"
                if a.stream
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
