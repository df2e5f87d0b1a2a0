"""Profile the router's hot path: cProfile around the router's server under load.

    python tests/bench/profile_router.py [--stream] [--seconds 8] [--top 40]

Starts the stub provider (0 ms), runs the byollm router in this process under cProfile
(uvloop and the router's own server, as ``byollm-router`` does), drives it with the Go
load generator (or wrk, or the built-in client) for a bounded time, then prints the
functions with the most own time and the most cumulative time. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import signal
import sys
import time

from benchlib import RESULTS_DIR, free_port, wait_port
from router_bench import TOKEN, load, start_stub

from byollm_router.app import create_app
from byollm_router.config import load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--dump", help="also write the raw profile to this file (pstats)")
    a = p.parse_args(argv)

    import logging

    import uvloop

    from byollm_router.logging import setup_logging

    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stub, stub_port = start_stub(0, logs)
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "LLM_MODE": "BYO",
            "LLM_PROVIDER": "openai",
            "LLM_BASE_URL": f"http://127.0.0.1:{stub_port}/v1",
            "LLM_API_KEY": "sk-bench-provider-key",
            "LLM_MODEL": "stub-model",
            "BYOLLM_ROUTER_TOKEN": TOKEN,
            "BYOLLM_TENANT": "bench",
            "BYOLLM_UPSTREAM_ALLOWLIST": "127.0.0.1",
        }
    )
    from byollm_router.server import serve

    setup_logging(logging.WARNING)
    cfg = load_config(env)
    prof = cProfile.Profile()
    result: dict[str, object] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def drive() -> None:  # in a thread; cProfile must run on the loop's thread
            wait_port(port, 20)
            load(port, TOKEN, a.stream, 4, 1)  # warm-up, not profiled
            loop.call_soon_threadsafe(prof.enable)
            t0 = time.perf_counter()
            result["load"] = load(port, TOKEN, a.stream, a.conns, a.seconds)
            result["wall"] = time.perf_counter() - t0
            loop.call_soon_threadsafe(prof.disable)
            os.kill(os.getpid(), signal.SIGTERM)  # the server's own graceful stop

        served = asyncio.create_task(
            serve(
                create_app(cfg),
                "127.0.0.1",
                port,
                header_timeout_s=cfg.client_header_timeout_s,
                max_connections=cfg.max_connections,
            )
        )
        await asyncio.to_thread(drive)
        await served

    try:
        uvloop.run(main())
    finally:
        stub.stop()
    print(f"load: {result.get('load')}")
    if a.dump:
        prof.dump_stats(a.dump)
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(a.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
