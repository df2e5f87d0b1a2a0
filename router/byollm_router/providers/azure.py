"""Azure OpenAI: the OpenAI wire format at a per-deployment URL with an ``api-key`` header.

The request's ``model`` names the deployment; it must be a valid Azure deployment name,
so it can only ever be one path segment (never ``..`` walking up the URL). Azure's data
plane cannot list deployments, so ``/v1/models`` answers locally with the deployments
this router is configured for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from byollm_router import errors
from byollm_router.contract import AZURE_DEPLOYMENT_PATTERN
from byollm_router.providers.base import (
    LocalAnswer,
    Provider,
    UpstreamCall,
    base_headers,
    with_forwarded,
)

_URL_CACHE_SIZE = 64
RESPONSES_API_VERSION = "2025-04-01-preview"
_DEPLOYMENT = re.compile(AZURE_DEPLOYMENT_PATTERN)


class Azure(Provider):
    name = "azure"

    def __init__(
        self, base_url: str, api_key: str, api_version: str, deployments: Iterable[str]
    ) -> None:
        base = base_url.rstrip("/")
        # Accept both the resource root and a base that already ends in /openai.
        self._base = base[: -len("/openai")] if base.endswith("/openai") else base
        self._version = quote(api_version, safe="")
        self._headers = base_headers(("api-key", api_key))
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        self._deployments = list(dict.fromkeys(d for d in deployments if d))

    def url(self, deployment: str, operation: str) -> httpx.URL:
        key = (deployment, operation)
        url = self._urls.get(key)
        if url is None:
            url = httpx.URL(
                f"{self._base}/openai/deployments/{quote(deployment, safe='')}/{operation}"
                f"?api-version={self._version}"
            )
            if len(self._urls) < _URL_CACHE_SIZE:  # bounded: deployments come from callers
                self._urls[key] = url
        return url

    def request_headers(self, client_headers: Mapping[str, str]) -> httpx.Headers:
        return with_forwarded(self._headers, client_headers)

    def responses_url(self, suffix: str = "", query: str = "") -> httpx.URL:
        """Azure's Responses API (``/openai/responses``; the deployment is the body's
        ``model``). It exists from api-version 2025-03-01-preview: an older configured
        version (fine for chat) is replaced by the oldest one that has GET, DELETE and
        input_items too."""
        version = self._version if self._version >= "2025-03-01" else RESPONSES_API_VERSION
        extra = f"&{query}" if query else ""
        return httpx.URL(f"{self._base}/openai/responses{suffix}?api-version={version}{extra}")

    def deployment(self, body: Mapping[str, Any]) -> str:
        return self._deployment(body)

    def _deployment(self, body: Mapping[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise errors.bad_field("model", "model (the Azure deployment name) is required.")
        if not _DEPLOYMENT.match(model):
            raise errors.bad_field(
                "model",
                "model must be an Azure deployment name: 2-64 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit.",
            )
        return model

    def chat(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        url = self.url(self._deployment(body), "chat/completions")
        return UpstreamCall("POST", url, with_forwarded(self._headers, client_headers), content)

    def embeddings(
        self, body: dict[str, Any], content: bytes, client_headers: Mapping[str, str]
    ) -> UpstreamCall:
        url = self.url(self._deployment(body), "embeddings")
        return UpstreamCall("POST", url, with_forwarded(self._headers, client_headers), content)

    def models(self, client_headers: Mapping[str, str]) -> UpstreamCall | LocalAnswer:
        now = int(time.time())
        data = [
            {"id": d, "object": "model", "created": now, "owned_by": "azure"}
            for d in self._deployments
        ]
        return LocalAnswer(200, orjson.dumps({"object": "list", "data": data}))
