"""JSON-lines logs with metadata only.

Every line is built from an explicit allow-list of fields (time, tenant, route, status,
latency, category, …). Nothing here ever receives a request or response body, a header
value or an exception message from upstream, so prompts, completions and keys cannot leak.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_LOGGER = "byollm_router"


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON object; only ``msg`` and whitelisted extras are kept.

    Third-party records (asyncio) go through here too; their exception text is dropped
    (the exception type is kept) because upstream error strings may quote request data.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
        return orjson.dumps(line).decode()


def _message(record: logging.LogRecord) -> str:
    """The record's fixed template, never interpolated: an argument could carry request
    data (values go in the allow-listed ``fields`` instead)."""
    if not isinstance(record.msg, str):
        return type(record.msg).__name__
    return record.msg


def _iso(ts: float) -> str:
    ms = int((ts % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{ms:03d}Z"


def setup_logging(level: int = logging.INFO) -> None:
    """Route the router's and asyncio's loggers to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    for name in (_LOGGER, "asyncio"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False


class RequestLog:
    """Writes one line per request; the caller passes only metadata."""

    def __init__(self, tenant: str) -> None:
        self._log = logging.getLogger(_LOGGER)
        self._tenant = tenant

    def request(
        self,
        *,
        route: str,
        method: str,
        status: int,
        latency_ms: float,
        category: str | None = None,
        upstream_status: int | None = None,
        error: str | None = None,
        stream: bool | None = None,
    ) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "tenant": self._tenant,
            "route": route,
            "method": method,
            "status": status,
            "latency_ms": round(latency_ms, 3),
        }
        if category is not None:
            fields["category"] = category
        if upstream_status is not None:
            fields["upstream_status"] = upstream_status
        if error is not None:
            fields["error"] = error  # one of the router's fixed error codes
        if stream is not None:
            fields["stream"] = stream
        self._log.info("request", extra={"fields": fields})

    def event(self, msg: str, **fields: Any) -> None:
        """A non-request event (start-up, shutdown); ``fields`` must be metadata only."""
        self._log.info(msg, extra={"fields": {"tenant": self._tenant, **fields}})
