"""``byollm-router --host H --port P``: validate the environment, then serve (``server.py``)."""

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

    import asyncio
    import logging

    from byollm_router.app import create_app
    from byollm_router.logging import setup_logging
    from byollm_router.server import serve

    setup_logging(getattr(logging, args.log_level.upper()))
    served = serve(
        create_app(cfg),
        args.host,
        args.port,
        header_timeout_s=cfg.client_header_timeout_s,
        max_connections=cfg.max_connections,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the router's server extra
        code = asyncio.run(served)
    else:
        code = uvloop.run(served)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
