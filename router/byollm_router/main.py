"""``byollm-router --host H --port P``: validate the environment, then serve with uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

from byollm_router import contract
from byollm_router.config import ConfigError, load_config


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="byollm-router",
        description="Per-tenant OpenAI-compatible LLM router (configured by environment).",
    )
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a pod's service port
    parser.add_argument("--port", type=int, default=contract.ROUTER_PORT)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        cfg = load_config(os.environ)
    except ConfigError as exc:
        # One line, naming the variable; values (the key) are never part of the message.
        print(f"byollm-router: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    import logging

    import uvicorn

    from byollm_router.app import create_app
    from byollm_router.logging import setup_logging

    level = getattr(logging, args.log_level.upper())
    setup_logging(level)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvloop is in the router extra
        loop = "asyncio"
    from byollm_router.server import protocol_class

    uvicorn.run(
        create_app(cfg),
        host=args.host,
        port=args.port,
        loop=loop,
        # httptools, with a request-head timeout and a connection cap (server.py)
        http=protocol_class(cfg.client_header_timeout_s, cfg.max_connections),
        lifespan="on",
        access_log=False,
        # The router reads no client address (no X-Forwarded-For rewriting to pay for on
        # every request: about 1 µs of the middleware per call, and one frame deeper).
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_config=None,
        log_level=level,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
