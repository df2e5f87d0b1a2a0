"""OpenAI wire format: openai, openrouter, groq, ollama, custom, and Managed (LiteLLM).

Requests and responses pass through byte for byte; only the credential changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from byollm_router.providers.base import (
    LocalAnswer,
    Provider,
    UpstreamCall,
    base_headers,
    with_forwarded,
)


class OpenAICompatible(Provider):
    """Bearer-token OpenAI-compatible upstream at ``base_url`` (…/v1)."""

    def __init__(self, name: str, base_url: str, api_key: str | None) -> None:
        self.name = name
        base = base_url.rstrip("/")
        self.base = base
        self._chat_url = httpx.URL(base + "/chat/completions")
        self._embeddings_url = httpx.URL(base + "/embeddings")
        self._models_url = httpx.URL(base + "/models")
        auth = [("authorization", f"Bearer {api_key}")] if api_key else []
        self._headers = base_headers(*auth)

    def request_headers(self, client_headers: Mapping[str, str]) -> httpx.Headers:
        return with_forwarded(self._headers, client_headers)

    def chat(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        headers = with_forwarded(self._headers, client_headers)
        return UpstreamCall("POST", self._chat_url, headers, content)

    def embeddings(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        headers = with_forwarded(self._headers, client_headers)
        return UpstreamCall("POST", self._embeddings_url, headers, content)

    def models(self, client_headers: Mapping[str, str]) -> UpstreamCall | LocalAnswer:
        return UpstreamCall("GET", self._models_url, with_forwarded(self._headers, client_headers))
