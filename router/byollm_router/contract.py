"""The router's configuration contract: the environment variables it reads.

The operator writes exactly these (into the ``<name>-llm`` Secret and the pod template);
the router reads exactly these. Both import the names from here so they cannot drift.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from byollm_router.contract_models import RouterEnv as RouterEnv
    from byollm_router.contract_models import RoutingTable as RoutingTable


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
    """The auto-router's six categories. Values are the routing-table keys."""

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
# Set by the kubelet in every pod (not by the operator): the API server's Service address,
# which the SSRF guard refuses whatever the allowlist says.
KUBERNETES_SERVICE_HOST: Final = "KUBERNETES_SERVICE_HOST"
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
# Opt-in constrained classifier output, in the wire form the upstream speaks: "json_schema"
# or "json_object" (llama-cpp-python); unset sends no response_format.
BYOLLM_AUTOROUTE_CONSTRAINED: Final = "BYOLLM_AUTOROUTE_CONSTRAINED"

# "The four BYO secret keys": reverting to Managed removes them (absent, not empty).
BYO_SECRET_KEYS: Final = (LLM_PROVIDER, LLM_BASE_URL, LLM_API_KEY, LLM_MODEL)

ROUTER_PORT: Final = 8080

# The operator reads a tenant's key only from a Secret carrying this label with value
# "true": naming a Secret in an LLMConfig is not enough to have it sent to a provider.
LLM_KEY_LABEL: Final = "byollm.io/llm-key"
# The operator's own Secrets (router config, router token) carry the same label with this
# value: the operator then watches Secrets with a server-side selector on the label's
# presence and never receives any other Secret of the cluster. Only "true" opts a Secret
# in as a key source, so a child Secret can never be named as one.
LLM_KEY_LABEL_OPERATOR: Final = "operator"

# --- provider wire constants both sides need ---------------------------------------------
DEFAULT_AZURE_API_VERSION: Final = "2024-10-21"  # GA api-version used when none is given
AZURE_API_VERSION_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}(-preview)?$"
ANTHROPIC_VERSION: Final = "2023-06-01"  # the anthropic-version header of the Messages API


# --- LLM_ROUTING ----------------------------------------------------------------------
# JSON written by the operator from spec.routing, e.g.
#   {"auto": true, "models": {"fast": "openai/gpt-oss-20b", "balanced": "qwen/..."}}
# A category missing from "models" falls back to LLM_MODEL.


# ``RoutingTable`` (this table as a model) and ``RouterEnv`` (the whole Secret as a model)
# live in ``contract_models`` and are importable from here: they need pydantic, which the
# operator and the SDK use and the router's server process does not load (~11 MB of RSS).


# --- router bounds against slow or oversized peers (optional; defaults below) ------------
# The most of one upstream answer the router holds in memory to translate it (a whole
# non-streamed answer, or one SSE event of a stream; Anthropic's wire format). Answers that
# need no translation are streamed through and never held whole. Beyond it: an
# OpenAI-shaped 502 ``upstream_response_too_large`` (an error event once a stream started).
BYOLLM_MAX_BUFFERED_RESPONSE_BYTES: Final = "BYOLLM_MAX_BUFFERED_RESPONSE_BYTES"
DEFAULT_MAX_BUFFERED_RESPONSE_BYTES: Final = 8 * 1024 * 1024
# Seconds a client has to send a whole request head (from connect, or from the first byte
# of the next request on a kept-alive connection); then 408 and the connection is closed.
BYOLLM_CLIENT_HEADER_TIMEOUT: Final = "BYOLLM_CLIENT_HEADER_TIMEOUT"
DEFAULT_CLIENT_HEADER_TIMEOUT_S: Final = 10.0
# Seconds a client has to send a whole request body once its head arrived; then 408.
BYOLLM_CLIENT_BODY_TIMEOUT: Final = "BYOLLM_CLIENT_BODY_TIMEOUT"
DEFAULT_CLIENT_BODY_TIMEOUT_S: Final = 60.0
# Open client connections per router process; a connection beyond it is answered 503
# (OpenAI-shaped, ``router_overloaded``) and closed.
BYOLLM_MAX_CONNECTIONS: Final = "BYOLLM_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS: Final = 1000

# An Azure OpenAI deployment name (the request's ``model`` in Azure mode), by Azure's naming
# rules for Microsoft.CognitiveServices/accounts/deployments: 2-64 characters, letters,
# digits, ``.``, ``_`` and ``-``, starting with a letter or digit. It becomes one path
# segment of the upstream URL, so ``.``/``..`` (dot segments) and ``/`` can never pass.
AZURE_DEPLOYMENT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"

# Seconds the router waits for a client that has stopped reading its answer (every buffer
# between them full); then the answer is abandoned, the connection closed and the upstream
# request cancelled. A client reading normally, however slowly the model writes, never
# meets it.
BYOLLM_CLIENT_WRITE_TIMEOUT: Final = "BYOLLM_CLIENT_WRITE_TIMEOUT"
DEFAULT_CLIENT_WRITE_TIMEOUT_S: Final = 60.0


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """``RoutingTable`` and ``RouterEnv``, loaded (with pydantic) on first use."""
        if name in ("RoutingTable", "RouterEnv"):
            from byollm_router import contract_models

            return getattr(contract_models, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
