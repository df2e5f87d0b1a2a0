"""OpenAI wire format: openai, openrouter, groq, ollama, custom, and Managed (LiteLLM).

Requests and responses pass through byte for byte; only the credential changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from byollm_router.providers.base import (
    USER_AGENT,
    LocalAnswer,
    Provider,
    UpstreamCall,
    forwarded,
)


class OpenAICompatible(Provider):
    """Bearer-token OpenAI-compatible upstream at ``base_url`` (…/v1)."""

    def __init__(self, name: str, base_url: str, api_key: str | None) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._chat_url = self._base + "/chat/completions"
        self._embeddings_url = self._base + "/embeddings"
        self._models_url = self._base + "/models"
        headers = [("content-type", "application/json"), ("user-agent", USER_AGENT)]
        if api_key:
            headers.append(("authorization", f"Bearer {api_key}"))
        self._headers = headers

    def _h(self, client_headers: Mapping[str, str]) -> list[tuple[str, str]]:
        extra = forwarded(client_headers)
        return self._headers + extra if extra else self._headers

    def chat(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        return UpstreamCall("POST", self._chat_url, self._h(client_headers), content)

    def embeddings(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        return UpstreamCall("POST", self._embeddings_url, self._h(client_headers), content)

    def models(self, client_headers: Mapping[str, str]) -> UpstreamCall | LocalAnswer:
        return UpstreamCall("GET", self._models_url, self._h(client_headers))
