"""The one upstream call for a Responses or Messages API request, per provider.

Same wire format as the provider: pass-through, the client's bytes as received (only the
model may have been defaulted or auto-routed) and the provider's bytes back. Different
wire format: translated both ways by :mod:`.messages_chat` / :mod:`.responses_messages`.
Every call is an :class:`UpstreamCall`, sent by the app through the same guarded
transport, timeouts and failure mapping as chat completions.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from byollm_router import errors
from byollm_router.protocols.messages_chat import ChatToMessages, to_chat
from byollm_router.protocols.responses_messages import MessagesToResponses, to_messages
from byollm_router.providers.anthropic import Anthropic
from byollm_router.providers.azure import Azure
from byollm_router.providers.base import Provider, UpstreamCall, dump_json
from byollm_router.providers.openai_compat import OpenAICompatible

# Route names (metrics labels) of the two APIs, and which use Anthropic's error shape.
RESPONSES: Final = "responses"
RESPONSE_ITEM: Final = "response_item"
MESSAGES: Final = "messages"
COUNT_TOKENS: Final = "count_tokens"
ANTHROPIC_WIRE_ROUTES: Final = frozenset({MESSAGES, COUNT_TOKENS})
# Routes where the router token may also come as ``x-api-key`` (what the anthropic SDK
# sends; OpenAI-SDK clients of these routes send a bearer token as usual).
X_API_KEY_ROUTES: Final = frozenset({RESPONSES, RESPONSE_ITEM, MESSAGES, COUNT_TOKENS})
ROUTES: Final = {
    "/v1/responses": (RESPONSES, b"POST", True),
    "/v1/messages": (MESSAGES, b"POST", True),
    "/v1/messages/count_tokens": (COUNT_TOKENS, b"POST", True),
}
ITEM_PREFIX: Final = "/v1/responses/"
ITEM_ENTRY: Final = (RESPONSE_ITEM, b"GET", True)

# A response id as OpenAI and Azure issue them: one URL path segment, nothing to escape,
# never a dot segment ("." or ".." would walk up the provider's URL).
_RESPONSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}\Z")
# Query parameters of GET /v1/responses/{id}[/input_items] forwarded upstream.
_ITEM_QUERY = frozenset({"include", "include[]", "stream", "starting_after", "after",
                         "before", "limit", "order"})  # fmt: skip


def auto_view(route: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The request as chat-style ``messages`` for the auto-router's rules and classifier
    (text and image parts are where the rules look, whatever the API)."""
    if route == RESPONSES:
        value = body.get("input")
        messages: list[Any] = [{"role": "user", "content": value}] if isinstance(value, str) else []
        if isinstance(value, list):
            messages = [m for m in value if isinstance(m, dict) and "content" in m]
        if isinstance(body.get("instructions"), str):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        return {"messages": messages}
    messages = list(body.get("messages") or []) if isinstance(body.get("messages"), list) else []
    system = body.get("system")
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages}


def _with_translator(call: UpstreamCall, translator: Any) -> UpstreamCall:
    return dataclasses.replace(call, translator=translator)


def _no_anthropic_headers(client_headers: Mapping[str, str]) -> dict[str, str]:
    """Client headers for an OpenAI-wire upstream: Anthropic's own stay at the router."""
    return {k: v for k, v in client_headers.items() if not k.startswith("anthropic-")}


def responses(
    provider: Provider,
    body: dict[str, Any],
    content: bytes,
    client_headers: Mapping[str, str],
    max_event_bytes: int,
) -> UpstreamCall:
    """``POST /v1/responses``."""
    if isinstance(provider, Anthropic):
        translated = dump_json(to_messages(body))
        return UpstreamCall(
            "POST",
            provider.messages_url,
            provider.request_headers(client_headers),
            translated,
            MessagesToResponses(body, max_event_bytes),
        )
    if isinstance(provider, Azure):
        provider.deployment(body)  # a valid deployment name, or the caller's 400
        url = provider.responses_url()
        return UpstreamCall("POST", url, provider.request_headers(client_headers), content)
    assert isinstance(provider, OpenAICompatible)
    url = httpx.URL(provider.base + "/responses")
    return UpstreamCall("POST", url, provider.request_headers(client_headers), content)


def response_item(
    provider: Provider,
    method: str,
    path: str,
    query: bytes,
    client_headers: Mapping[str, str],
) -> UpstreamCall:
    """``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``."""
    rest = path[len(ITEM_PREFIX) :]
    rid, _, sub = rest.partition("/")
    if not _RESPONSE_ID.match(rid) or sub not in ("", "input_items"):
        raise errors.not_found()
    if sub and method != "GET":
        raise errors.method_not_allowed()
    if isinstance(provider, Anthropic):
        raise errors.RouterError(
            400,
            "Stored responses cannot be retrieved, listed or deleted with provider "
            "anthropic: it keeps no responses (each call is translated to one Messages "
            "call). Keep the conversation on the client and send it as input.",
            "invalid_request_error",
            "unsupported_by_provider",
            "response_id",
        )
    suffix = f"/{rid}" + (f"/{sub}" if sub else "")
    kept = _forwarded_query(query)
    headers = provider.request_headers(client_headers)  # type: ignore[attr-defined]
    if isinstance(provider, Azure):
        return UpstreamCall(method, provider.responses_url(suffix, kept), headers)
    assert isinstance(provider, OpenAICompatible)
    url = httpx.URL(provider.base + "/responses" + suffix + (f"?{kept}" if kept else ""))
    return UpstreamCall(method, url, headers)


def _forwarded_query(query: bytes) -> str:
    """Only the documented query parameters, re-encoded (nothing else reaches the URL)."""
    if not query:
        return ""
    params = httpx.QueryParams(query.decode("latin-1"))
    kept: list[tuple[str, str | int | float | bool | None]] = [
        (k, v) for k, v in params.multi_items() if k in _ITEM_QUERY
    ]
    return str(httpx.QueryParams(kept)) if kept else ""


def messages(
    provider: Provider,
    body: dict[str, Any],
    content: bytes,
    client_headers: Mapping[str, str],
    max_event_bytes: int,
) -> UpstreamCall:
    """``POST /v1/messages``."""
    if isinstance(provider, Anthropic):
        headers = provider.request_headers(client_headers)
        return UpstreamCall("POST", provider.messages_url, headers, content)
    native = provider.name in ("openai", "azure")
    chat = to_chat(body, "max_completion_tokens" if native else "max_tokens")
    call = provider.chat(chat, dump_json(chat), _no_anthropic_headers(client_headers))
    return _with_translator(call, ChatToMessages(max_event_bytes))


def count_tokens(
    provider: Provider, content: bytes, client_headers: Mapping[str, str]
) -> UpstreamCall:
    """``POST /v1/messages/count_tokens``: Anthropic has it; chat-completions APIs do not."""
    if not isinstance(provider, Anthropic):
        raise errors.unsupported("Token counting (/v1/messages/count_tokens)", provider.name)
    headers = provider.request_headers(client_headers)
    return UpstreamCall("POST", provider.count_tokens_url, headers, content)
