"""The router's own added time on the Responses and Messages routes, beside chat completions.

    python tests/bench/protocols_bench.py [--short] [--requests N] [--out FILE]

For each provider wire format (openai, anthropic, azure) a router aimed at the stub
provider (zero latency, loopback) gets N sequential requests per route (chat completions,
Responses, Messages), plain and streamed, after a warm-up. Per row: the median and p90 of
the ``x-byollm-overhead-ms`` header (the router's added time up to the response head),
the client's round-trip median, and the ratio of the overhead median to chat completions'
on the same router in the same run (the baseline). Results go to
``build/bench/protocols.json`` (or ``--out``); a table is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import RESULTS_DIR, ROOT, percentile

sys.path.insert(0, str(ROOT / "tests"))
from stubs.harness import RouterProcess, StubServer

TOKEN = "bench-router-token-0123456789"
ASK = [{"role": "user", "content": "hello"}]
ROUTES: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
    ("chat_completions", "/v1/chat/completions", {"authorization": f"Bearer {TOKEN}"},
     {"model": "stub-model", "messages": ASK}),
    ("responses", "/v1/responses", {"authorization": f"Bearer {TOKEN}"},
     {"model": "stub-model", "input": "hello", "store": False}),
    ("messages", "/v1/messages", {"x-api-key": TOKEN, "anthropic-version": "2023-06-01"},
     {"model": "stub-model", "max_tokens": 16, "messages": ASK}),
]  # fmt: skip


def _env(kind: str, stub: StubServer) -> dict[str, str]:
    env = {
        "BYOLLM_ROUTER_TOKEN": TOKEN,
        "BYOLLM_TENANT": f"bench-{kind}",
        "BYOLLM_UPSTREAM_ALLOWLIST": "127.0.0.1",
        "LLM_PROVIDER": kind,
        "LLM_BASE_URL": stub.url if kind == "azure" else f"{stub.url}/v1",
        "LLM_API_KEY": f"sk-{kind}-bench",
        "LLM_MODEL": "stub-model",
    }
    if kind == "azure":
        env["LLM_AZURE_API_VERSION"] = "2024-10-21"
    return env


def _wire(kind: str, route: str) -> str:
    native = {"chat_completions": kind != "anthropic", "responses": kind != "anthropic"}
    return "pass-through" if native.get(route, kind == "anthropic") else "translated"


def run(requests: int, warmup: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    stub = StubServer()
    logs = Path(tempfile.mkdtemp(prefix="protocols-bench-"))
    try:
        for kind in ("openai", "anthropic", "azure"):
            router = RouterProcess(_env(kind, stub), logs / f"{kind}.log")
            try:
                with httpx.Client(base_url=router.url, timeout=30) as client:
                    for route, path, headers, body in ROUTES:
                        for stream in (False, True):
                            payload = {**body, "stream": stream}
                            added: list[float] = []
                            trips: list[float] = []
                            for i in range(warmup + requests):
                                began = time.perf_counter()
                                response = client.post(path, headers=headers, json=payload)
                                response.read()
                                trip = (time.perf_counter() - began) * 1000.0
                                if response.status_code != 200:
                                    raise RuntimeError(f"{kind} {route}: {response.status_code}")
                                if i >= warmup:
                                    added.append(float(response.headers["x-byollm-overhead-ms"]))
                                    trips.append(trip)
                            rows.append(
                                {
                                    "provider": kind,
                                    "route": route,
                                    "wire": _wire(kind, route),
                                    "stream": stream,
                                    "n": len(added),
                                    "overhead_p50_ms": statistics.median(added),
                                    "overhead_p90_ms": percentile(added, 90),
                                    "round_trip_p50_ms": statistics.median(trips),
                                }
                            )
            finally:
                router.stop()
    finally:
        stub.stop()
    for row in rows:  # the baseline: chat completions on the same router, same streaming
        base = next(
            r
            for r in rows
            if r["provider"] == row["provider"]
            and r["route"] == "chat_completions"
            and r["stream"] == row["stream"]
        )
        row["vs_chat"] = row["overhead_p50_ms"] / base["overhead_p50_ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="tiny run for CI")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "protocols.json")
    args = parser.parse_args()
    requests, warmup = (10, 3) if args.short else (args.requests, 30)
    rows = run(requests, warmup)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"requests": requests, "rows": rows}, indent=2))
    print(
        "| route | provider | wire | stream | overhead p50 / p90 ms | vs chat | round trip p50 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['route']} | {r['provider']} | {r['wire']} | {'yes' if r['stream'] else 'no'} "
            f"| {r['overhead_p50_ms']:.3f} / {r['overhead_p90_ms']:.3f} | {r['vs_chat']:.2f} "
            f"| {r['round_trip_p50_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
