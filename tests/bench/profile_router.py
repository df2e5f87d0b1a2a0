"""Profile the router's hot path: cProfile around uvicorn serving the app under load.

    python tests/bench/profile_router.py [--stream] [--seconds 8] [--top 40]

Starts the stub provider (0 ms), runs the byollm router in this process under cProfile
(uvloop, the router's httptools protocol and asyncio primitives, as ``byollm-router``
does), drives it with the Go load generator (or wrk, or the built-in client) for a
bounded time, then prints the functions with the most own time and the
most cumulative time. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
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
    a = p.parse_args(argv)

    import logging

    import uvicorn
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
    from byollm_router.server import protocol_class

    setup_logging(logging.WARNING)
    cfg = load_config(env)
    app = create_app(cfg)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        http=protocol_class(cfg.client_header_timeout_s, cfg.max_connections),
        lifespan="on",
        proxy_headers=False,
        access_log=False,
        log_config=None,
        log_level=logging.WARNING,
    )
    server = uvicorn.Server(config)
    prof = cProfile.Profile()
    result: dict[str, object] = {}

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(server.serve())

        def drive() -> None:  # in a thread; cProfile must run on the loop's thread
            wait_port(port, 20)
            load(port, TOKEN, a.stream, 4, 1)  # warm-up, not profiled
            loop.call_soon_threadsafe(prof.enable)
            t0 = time.perf_counter()
            result["load"] = load(port, TOKEN, a.stream, a.conns, a.seconds)
            result["wall"] = time.perf_counter() - t0
            loop.call_soon_threadsafe(prof.disable)

        await asyncio.to_thread(drive)
        server.should_exit = True
        await task

    try:
        uvloop.run(serve())
    finally:
        stub.stop()
    print(f"load: {result.get('load')}")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(a.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
