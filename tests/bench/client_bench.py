"""CPU per upstream request of three HTTP/1.1 clients against the stub provider (0 ms):
the router's own (``byollm_router.upstream``), aiohttp's, and httpx's guarded transport.

    python tests/bench/client_bench.py [--requests 3000] [--tasks 16]

Only the client runs in this process (the stub is another), so process CPU time over the
requests is the client's cost, kernel time of its sockets included. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop
from benchlib import RESULTS_DIR
from router_bench import start_stub

from byollm_router import guard, upstream

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"authorization": "Bearer x", "content-type": "application/json"}
LOOPBACK = guard.Allowlist.parse("127.0.0.1")


async def measure(send: Callable[[], Awaitable[None]], n: int, tasks: int) -> tuple[float, float]:
    """(CPU µs per request, requests per second) over ``n`` requests from ``tasks`` tasks."""
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            await send()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def router_client(url: str, n: int, tasks: int) -> tuple[float, float]:
    client = upstream.UpstreamClient(LOOPBACK)
    timeouts = upstream.Timeouts(5, 5, 5, 5)
    target, headers = httpx.URL(url), httpx.Headers(HEADERS)

    async def send() -> None:
        r = await client.request("POST", target, headers, BODY, timeouts)
        async for _ in r.aiter_raw():
            pass
        await r.aclose()

    try:
        return await measure(send, n, tasks)
    finally:
        await client.aclose()


async def aiohttp_client(url: str, n: int, tasks: int) -> tuple[float, float]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as r:
                async for _ in r.content.iter_any():
                    pass

        return await measure(send, n, tasks)


async def httpx_transport(url: str, n: int, tasks: int) -> tuple[float, float]:
    transport = guard.build_transport(LOOPBACK, retries=0)

    async def send() -> None:
        r = await transport.handle_async_request(
            httpx.Request("POST", url, headers=HEADERS, content=BODY)
        )
        async for _ in r.aiter_raw():
            pass
        await r.aclose()

    try:
        return await measure(send, n, tasks)
    finally:
        await transport.aclose()


async def run(n: int, tasks: int) -> None:
    stub, port = start_stub(0, Path(RESULTS_DIR))
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        for name, fn in [
            ("byollm upstream.py", router_client),
            ("aiohttp", aiohttp_client),
            ("httpx guarded transport", httpx_transport),
        ]:
            await fn(url, min(n, 300), tasks)  # warm-up
            cpu, rps = await fn(url, n, tasks)
            print(f"{name:24} {cpu:7.0f} µs CPU/request {rps:8.0f} req/s", flush=True)
    finally:
        stub.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--tasks", type=int, default=16)
    a = p.parse_args(argv)
    uvloop.install()
    asyncio.run(run(a.requests, a.tasks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
