"""Errors the router itself produces, shaped like OpenAI's so every SDK parses them.

Provider errors are never re-shaped: they pass through verbatim. Only failures
that happen *at* the router (auth, size, bad JSON, upstream unreachable/timeout/blocked)
use these bodies. Messages are fixed strings: never a prompt fragment, a key or a URL query.
"""

from __future__ import annotations

import orjson


class RouterError(Exception):
    """An error answered by the router with an OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str,
        param: str | None = None,
        *,
        close: bool = False,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.close = close  # answer with "Connection: close"

    def body(self, wire: str = "openai") -> bytes:
        """The error body in the route's wire format: OpenAI's, or Anthropic's on the
        Messages API routes (``wire == "anthropic"``) so the anthropic SDK parses it."""
        if wire == "anthropic":  # no param field: named in the message, as Anthropic does
            message = f"{self.param}: {self.message}" if self.param else self.message
            return anthropic_error_body(self.status, message)
        return error_body(self.message, self.type, self.code, self.param)

    def sse_event(self, wire: str = "openai") -> bytes:
        """The same error as one SSE event, for failures after a stream has started.

        The OpenAI SDK raises ``APIError`` when a ``data:`` event carries an ``error`` key;
        the anthropic SDK raises on an ``event: error``.
        """
        if wire == "anthropic":
            return b"event: error\ndata: " + self.body(wire) + b"\n\n"
        return b"data: " + self.body() + b"\n\n"


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


# Anthropic's error ``type`` for each status (its SDK maps the status to an exception class;
# the type is what its users read).
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_body(status: int, message: str) -> bytes:
    kind = ANTHROPIC_ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


# --- the router's own errors --------------------------------------------------------------


def unauthorized() -> RouterError:
    return RouterError(
        401,
        "Missing or invalid bearer token for this router.",
        "invalid_request_error",
        "invalid_router_token",
    )


def too_large(limit: int) -> RouterError:
    return RouterError(
        413,
        f"Request body exceeds the router's limit of {limit} bytes.",
        "invalid_request_error",
        "request_too_large",
    )


def bad_json() -> RouterError:
    return RouterError(
        400,
        "Request body is not valid JSON (expected a JSON object).",
        "invalid_request_error",
        "invalid_json",
    )


def bad_field(param: str, message: str) -> RouterError:
    return RouterError(400, message, "invalid_request_error", "invalid_value", param)


def not_found() -> RouterError:
    return RouterError(404, "Unknown route.", "invalid_request_error", "unknown_url")


def method_not_allowed() -> RouterError:
    return RouterError(405, "Method not allowed.", "invalid_request_error", "method_not_allowed")


def unsupported(what: str, provider: str) -> RouterError:
    return RouterError(
        400,
        f"{what} is not supported by provider {provider}.",
        "invalid_request_error",
        "unsupported_by_provider",
    )


def upstream_unreachable() -> RouterError:
    return RouterError(
        503,
        "The LLM provider is unreachable. There is no fallback to another provider.",
        "upstream_error",
        "upstream_unreachable",
    )


def upstream_timeout() -> RouterError:
    return RouterError(
        504,
        "The LLM provider did not answer in time.",
        "upstream_error",
        "upstream_timeout",
    )


def upstream_overloaded() -> RouterError:
    return RouterError(
        503,
        "The router has no free upstream connection; retry shortly.",
        "upstream_error",
        "router_overloaded",
    )


def upstream_broken() -> RouterError:
    return RouterError(
        502,
        "The connection to the LLM provider failed during the response.",
        "upstream_error",
        "upstream_disconnected",
    )


def upstream_bad_response() -> RouterError:
    return RouterError(
        502,
        "The LLM provider sent a response the router could not translate.",
        "upstream_error",
        "upstream_bad_response",
    )


def upstream_blocked() -> RouterError:
    """The SSRF guard refused the provider's address: a config problem, not the caller's."""
    return RouterError(
        502,
        "The router refused to connect to the provider's address "
        "(private, loopback or metadata address not on the allowlist).",
        "upstream_error",
        "upstream_blocked",
    )


def upstream_too_large(limit: int) -> RouterError:
    """An answer the router must hold to translate is larger than it may hold."""
    return RouterError(
        502,
        f"The LLM provider's response exceeds the router's limit of {limit} bytes "
        "for a response it must translate.",
        "upstream_error",
        "upstream_response_too_large",
    )


def request_timeout() -> RouterError:
    return RouterError(
        408,
        "The request was not received in time.",
        "invalid_request_error",
        "request_timeout",
        close=True,  # the rest of a slow body is not waited for
    )


def too_many_connections() -> RouterError:
    return RouterError(
        503,
        "The router has too many open connections; retry shortly.",
        "server_error",
        "router_overloaded",
    )


def malformed_http() -> RouterError:
    return RouterError(
        400,
        "The request is not valid HTTP/1.1.",
        "invalid_request_error",
        "malformed_request",
        close=True,
    )
