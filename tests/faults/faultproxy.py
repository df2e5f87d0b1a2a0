"""A loopback HTTP proxy in front of the API server that misbehaves on demand.

The operator under test gets a kubeconfig pointing here (plain HTTP on 127.0.0.1; the
proxy speaks TLS to the API server). Modes:

* ``pass``: forward everything, streams (watches) included, chunk by chunk;
* ``errors``: every request is answered 429 (with Retry-After) or 500 in turn, without
  reaching the API server, except that every third write IS forwarded and its answer
  replaced by a 500: the write happened, the client is told it failed (a load balancer
  timing out after the server committed); a retry must not write it twice;
* ``cut-watches``: other requests pass; every watch is cut abruptly (TCP reset) 0.3-1.5 s
  after it starts.

Runs its own event loop in a thread; counts what it did for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import threading
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

from byollm_dev.controlplane import free_port

_HOP = {"transfer-encoding", "connection", "keep-alive", "host", "content-length"}
MODES = ("pass", "errors", "cut-watches")


class FaultProxy:
    def __init__(self, upstream: str, ca_file: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.port = free_port()
        self.mode = "pass"
        self.counts: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random(7)
        self._streams: set[asyncio.Task[None]] = set()
        self.kubeconfig: Path | None = None  # set by the fixture: the operator's, via here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        if mode == "cut-watches":  # watches already open are cut too
            for task in list(self._streams):
                self._loop.call_soon_threadsafe(task.cancel)

    async def _start(self) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        for task in list(self._streams):  # open watches first, or cleanup waits on them
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await asyncio.sleep(0.5)  # TLS transports to the API server finish closing

    def _error(self) -> web.Response:
        self.counts["errors"] += 1
        if self.counts["errors"] % 2:
            self.counts["429"] += 1
            return web.json_response(
                {"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429},
                status=429,
                headers={"Retry-After": "1"},
            )
        self.counts["500"] += 1
        return web.json_response(
            {"kind": "Status", "status": "Failure", "reason": "InternalError", "code": 500},
            status=500,
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        write = request.method in ("POST", "PUT", "PATCH", "DELETE")
        mode = self.mode
        forward_then_fail = False
        if mode == "errors":
            self.counts["writes-in-errors"] += write
            if write and self.counts["writes-in-errors"] % 3 == 0:
                forward_then_fail = True
            else:
                return self._error()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body or None,
                # exactly the client's Content-Type, or none (the Kubernetes client sends
                # none on some writes; aiohttp's application/octet-stream gets a 415)
                skip_auto_headers=("Content-Type",),
                headers=headers,
            )
        except aiohttp.ClientError:
            self.counts["upstream-down"] += 1
            return web.Response(status=503, text="upstream unreachable")
        async with upstream:
            if forward_then_fail:
                await upstream.read()
                self.counts["written-then-500"] += 1
                return self._error()
            resp = web.StreamResponse(status=upstream.status)
            for k, v in upstream.headers.items():
                if k.lower() not in _HOP:
                    resp.headers[k] = v
            if not watch:
                data = await upstream.read()
                resp.content_length = len(data)
                await resp.prepare(request)
                await resp.write(data)
                await resp.write_eof()
                return resp
            await resp.prepare(request)
            task = asyncio.current_task()
            assert task is not None
            cut_after = self._rng.uniform(0.3, 1.5) if self.mode == "cut-watches" else None
            self._streams.add(task)  # type: ignore[arg-type]
            try:
                async with asyncio.timeout(cut_after):
                    async for chunk in upstream.content.iter_any():
                        await resp.write(chunk)
            except (TimeoutError, asyncio.CancelledError):
                self.counts["watches-cut"] += 1
                if request.transport is not None:
                    request.transport.abort()  # a reset, not a clean end of stream
                return resp
            finally:
                self._streams.discard(task)  # type: ignore[arg-type]
            await resp.write_eof()
            return resp
