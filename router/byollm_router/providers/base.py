"""What a provider adapter gives the app: how to call upstream, and how to read the answer.

Adapters are pure: they build requests and translate bytes, and never do I/O, so the app
owns connection handling, cancellation and error mapping in one place.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from byollm_router import errors

# Client headers worth forwarding upstream (provider features, attribution); everything
# else, notably the router's own Authorization, stays at the router.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "openai-organization",
        "openai-project",
        "openai-beta",
        "http-referer",  # OpenRouter attribution
        "x-title",  # OpenRouter attribution
        "idempotency-key",
        "x-request-id",
        "anthropic-beta",
        "anthropic-version",  # the Messages API pass-through keeps the client's version
    }
)

USER_AGENT = "byollm-router/0.1"


class StreamTranslator(Protocol):
    """Incremental translation of an upstream stream into OpenAI SSE bytes."""

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class ResponseTranslator(Protocol):
    """Translation of a successful (2xx) upstream answer into the OpenAI shape."""

    def body(self, data: bytes) -> bytes: ...

    def stream(self) -> StreamTranslator: ...


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One upstream HTTP request, plus how to translate its 2xx answer (None: verbatim)."""

    method: str
    url: httpx.URL
    headers: httpx.Headers
    content: bytes | None = None
    translator: ResponseTranslator | None = None


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """An answer the adapter produces without calling upstream (e.g. Azure's model list)."""

    status: int
    body: bytes


class Provider(ABC):
    """One wire format. ``body`` is the parsed request (model already defaulted/routed);
    ``content`` is the exact bytes to send when the wire format is OpenAI's own."""

    name: str

    @abstractmethod
    def chat(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall: ...

    @abstractmethod
    def embeddings(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall: ...

    @abstractmethod
    def models(self, client_headers: Mapping[str, str]) -> UpstreamCall | LocalAnswer: ...


def base_headers(*pairs: tuple[str, str], decoded: bool = False) -> httpx.Headers:
    """Headers built once per provider (parsing them per request costs ~40 us).

    ``decoded``: the router must read the answer itself (translation), so it accepts
    compression; passthrough asks for identity and forwards the bytes as they come.
    """
    encoding = "gzip, deflate" if decoded else "identity"
    return httpx.Headers(
        [
            ("content-type", "application/json"),
            ("user-agent", USER_AGENT),
            ("accept-encoding", encoding),
            *pairs,
        ]
    )


def with_forwarded(base: httpx.Headers, client_headers: Mapping[str, str]) -> httpx.Headers:
    """``base`` plus the client headers passed upstream (names already lower-case).

    Returns ``base`` itself when there is nothing to add: ``httpx.Request`` copies it.
    """
    extra = [(k, v) for k, v in client_headers.items() if k in FORWARDED_REQUEST_HEADERS]
    if not extra:
        return base
    headers = base.copy()
    for name, value in extra:
        headers[name] = value
    return headers


def dump_json(body: dict[str, Any]) -> bytes:
    """A request body as JSON for the upstream. Bodies are parsed with a fallback that
    admits integers beyond 64 bits (and NaN/Infinity), which orjson cannot write: those go
    through the standard library, and what is not valid JSON at all is the caller's 400."""
    try:
        return orjson.dumps(body)
    except TypeError:
        try:
            return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        except (ValueError, RecursionError):
            raise errors.bad_json() from None


def json_loads(raw: bytes | str) -> Any:
    """Parse JSON from a client: orjson, falling back to the standard library for what
    orjson refuses but JSON allows (integers beyond 64 bits). ``ValueError`` if invalid."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except RecursionError:  # nesting deeper than the stack
            raise ValueError("JSON nested too deeply") from None


def text_field(
    item: Mapping[str, Any], where: str, noun: str = "part", missing: str | None = None
) -> str:
    """The ``text`` of a client's text part or block, which must be a string (``str()`` of a
    client value is not safe: integers of more than 4300 digits refuse it); otherwise the
    caller's 400 naming ``<where>.text``. ``missing``: what an absent ``text`` stands for
    (``None``: absent is refused like a wrong type)."""
    text = item.get("text", missing)
    if not isinstance(text, str):
        raise errors.bad_field(f"{where}.text", f"A text {noun}'s text must be a string.")
    return text


def string_field(item: Mapping[str, Any], key: str, where: str, message: str) -> str:
    """``item[key]``, which must be a string; otherwise the caller's 400 naming
    ``<where>.<key>``."""
    value = item.get(key)
    if not isinstance(value, str):
        raise errors.bad_field(f"{where}.{key}", message)
    return value
