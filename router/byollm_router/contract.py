"""The router's configuration contract: the environment variables it reads.

The operator writes exactly these (into the ``<name>-llm`` Secret and the pod template);
the router reads exactly these. Both import the names from here so they cannot drift.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field


class Mode(StrEnum):
    BYO = "BYO"
    MANAGED = "Managed"


class ProviderType(StrEnum):
    OPENAI = "openai"
    AZURE = "azure"
    ANTHROPIC = "anthropic"
    OPENROUTER = "openrouter"
    GROQ = "groq"
    OLLAMA = "ollama"
    CUSTOM = "custom"


class Category(StrEnum):
    """The auto-router's six categories (seed 000). Values are the routing-table keys."""

    FAST = "fast"
    BALANCED = "balanced"
    REASONING = "reasoning"
    LONG_CONTEXT = "longContext"
    VISION = "vision"
    CODE = "code"


# Providers whose baseURL the user must give; the others have a public default.
PROVIDERS_REQUIRING_BASE_URL: Final = frozenset({ProviderType.AZURE, ProviderType.CUSTOM})

DEFAULT_BASE_URLS: Final[dict[ProviderType, str]] = {
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ANTHROPIC: "https://api.anthropic.com/v1",
    ProviderType.OPENROUTER: "https://openrouter.ai/api/v1",
    ProviderType.GROQ: "https://api.groq.com/openai/v1",
    ProviderType.OLLAMA: "https://ollama.com/v1",
}

# --- environment variable names -------------------------------------------------------
LLM_MODE: Final = "LLM_MODE"
LLM_PROVIDER: Final = "LLM_PROVIDER"
LLM_BASE_URL: Final = "LLM_BASE_URL"
LLM_API_KEY: Final = "LLM_API_KEY"
LLM_MODEL: Final = "LLM_MODEL"
LLM_ROUTING: Final = "LLM_ROUTING"
LLM_AZURE_API_VERSION: Final = "LLM_AZURE_API_VERSION"
BYOLLM_MANAGED_URL: Final = "BYOLLM_MANAGED_URL"
# Managed mode only: the platform's default model for requests without a model (and for
# model "auto" when the platform has no category table).
BYOLLM_MANAGED_MODEL: Final = "BYOLLM_MANAGED_MODEL"
BYOLLM_ROUTER_TOKEN: Final = "BYOLLM_ROUTER_TOKEN"
BYOLLM_UPSTREAM_ALLOWLIST: Final = "BYOLLM_UPSTREAM_ALLOWLIST"
BYOLLM_TENANT: Final = "BYOLLM_TENANT"
# Managed mode only, optional: a LiteLLM (virtual) key the router sends to the shared
# LiteLLM as a bearer token, so the platform can attribute managed spend per tenant.
BYOLLM_MANAGED_API_KEY: Final = "BYOLLM_MANAGED_API_KEY"

# --- router tunables (optional; the operator may leave them unset) ---------------------
BYOLLM_UPSTREAM_TIMEOUT: Final = "BYOLLM_UPSTREAM_TIMEOUT"  # seconds between upstream bytes
BYOLLM_UPSTREAM_CONNECT_TIMEOUT: Final = "BYOLLM_UPSTREAM_CONNECT_TIMEOUT"  # seconds
BYOLLM_MAX_REQUEST_BYTES: Final = "BYOLLM_MAX_REQUEST_BYTES"  # inbound body limit
BYOLLM_AUTOROUTE_TIMEOUT: Final = "BYOLLM_AUTOROUTE_TIMEOUT"  # classifier call budget, s
# Input above this many estimated tokens goes to the longContext model without a classifier call.
BYOLLM_AUTOROUTE_LONG_CONTEXT_TOKENS: Final = "BYOLLM_AUTOROUTE_LONG_CONTEXT_TOKENS"

# "The four BYO secret keys" of seed 000: reverting to Managed removes them (absent, not empty).
BYO_SECRET_KEYS: Final = (LLM_PROVIDER, LLM_BASE_URL, LLM_API_KEY, LLM_MODEL)

ROUTER_PORT: Final = 8080


# --- LLM_ROUTING ----------------------------------------------------------------------
# JSON written by the operator from spec.routing, e.g.
#   {"auto": true, "models": {"fast": "openai/gpt-oss-20b", "balanced": "qwen/..."}}
# A category missing from "models" falls back to LLM_MODEL.


class RoutingTable(BaseModel):
    """The auto-router's table: which model serves each category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto: bool = Field(
        default=False,
        description='When true, a request without "model" is auto-routed like model "auto".',
    )
    models: dict[Category, str] = Field(default_factory=dict)
