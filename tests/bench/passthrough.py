"""The bare pass-through floor: uvicorn + httpx forwarding bytes, nothing else.

    python tests/bench/passthrough.py --port P --upstream http://127.0.0.1:N

Same stack as the router (uvicorn, uvloop, httptools, one pooled ``httpx.AsyncClient``)
with no auth, no JSON parsing, no metrics, no logs: the practical lower bound for a
Python proxy on this machine.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import uvicorn

_client: httpx.AsyncClient | None = None
_upstream = ""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            limits = httpx.Limits(max_connections=1000)
            _client = httpx.AsyncClient(base_url=_upstream, limits=limits)
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    assert _client is not None
    headers = [(k, v) for k, v in scope["headers"] if k in (b"authorization", b"content-type")]
    req = _client.build_request(scope["method"], scope["path"], headers=headers, content=body)
    resp = await _client.send(req, stream=True)
    ctype = resp.headers.get("content-type", "application/json").encode()
    await send({"type": "http.response.start", "status": resp.status_code,
                "headers": [(b"content-type", ctype)]})  # fmt: skip
    async for chunk in resp.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await resp.aclose()
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    global _upstream
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    _upstream = args.upstream
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
