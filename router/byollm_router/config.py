"""Router configuration: read once from the environment (the contract), validated up front.

A misconfigured router must fail at start-up with one line that names the variable at
fault and never echoes a value (the API key travels in the same environment), rather than
fail on the first tenant request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import orjson

from byollm_router import contract as c
from byollm_router import guard
from byollm_router.autoroute import CONSTRAINED_FORMATS, DEFAULT_LONG_CONTEXT_TOKENS
from byollm_router.contract import Category, Mode, ProviderType

DEFAULT_UPSTREAM_TIMEOUT_S = 600.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
DEFAULT_AUTOROUTE_TIMEOUT_S = 2.0  # = autoroute.DEFAULT_CLASSIFIER_TIMEOUT_S

_AZURE_VERSION_RE = re.compile(c.AZURE_API_VERSION_PATTERN)


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the variable, no values."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Secret:
    """A credential that no repr, str, log line or error message shows."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Routing:
    """The auto-router's table (``LLM_ROUTING``): which model serves each category.

    The router's own reading of ``contract.RoutingTable``, parsed by hand so the router
    process does without pydantic; a unit test checks both accept and refuse alike.
    """

    auto: bool = False
    models: Mapping[Category, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterConfig:
    """Everything the router reads, resolved and validated.

    ``upstream_key`` is the credential sent upstream (the tenant's key in BYO, the optional
    LiteLLM key in Managed); it and the router token are :class:`Secret` so no repr, log
    line or error can show them. A plain dataclass: the router's server process does not
    load pydantic (about 11 MB of RSS and 0.1 s of start-up).
    """

    mode: Mode
    provider: ProviderType | None  # None in Managed mode
    base_url: str  # upstream base (…/v1), no trailing slash: tenant provider or shared LiteLLM
    upstream_key: Secret | None
    model: str | None  # default model
    router_token: Secret
    routing: Routing
    azure_api_version: str
    allowlist: str | None
    api_server_host: str | None  # never an upstream, whatever the allowlist says
    tenant: str
    upstream_timeout_s: float
    connect_timeout_s: float
    max_request_bytes: int
    autoroute_timeout_s: float
    long_context_tokens: int
    autoroute_constrained: str | None = None  # a key of autoroute.CONSTRAINED_FORMATS
    max_buffered_response_bytes: int = c.DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
    client_header_timeout_s: float = c.DEFAULT_CLIENT_HEADER_TIMEOUT_S
    client_body_timeout_s: float = c.DEFAULT_CLIENT_BODY_TIMEOUT_S
    client_write_timeout_s: float = c.DEFAULT_CLIENT_WRITE_TIMEOUT_S
    max_connections: int = c.DEFAULT_MAX_CONNECTIONS
    # GET /drainz (the pod's preStop hook) answers after this long: the Service stops routing
    # new connections here meanwhile, and every response closes its connection.
    drain_seconds: float = 5.0


def _get(env: Mapping[str, str], name: str) -> str | None:
    """Unset and empty are the same: the operator removes keys rather than blanking them."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _header_safe(value: str) -> bool:
    """Printable ASCII only: the key is sent in a header, byte for byte."""
    return all(0x20 <= ord(ch) < 0x7F for ch in value)


def _url(env: Mapping[str, str], name: str, value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ConfigError(name, "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, "must be an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ConfigError(name, "must not carry a query string or fragment")
    if parts.username or parts.password:
        raise ConfigError(name, "must not embed credentials")
    return value.rstrip("/")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, "must be a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(name, "must be a positive number of seconds")
    return value


def _constrained(env: Mapping[str, str]) -> str | None:
    raw = _get(env, c.BYOLLM_AUTOROUTE_CONSTRAINED)
    if raw is None or raw in CONSTRAINED_FORMATS:
        return raw
    raise ConfigError(
        c.BYOLLM_AUTOROUTE_CONSTRAINED, f"must be one of {', '.join(sorted(CONSTRAINED_FORMATS))}"
    )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, "must be a whole number") from None
    if value <= 0:
        raise ConfigError(name, "must be a positive whole number")
    return value


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _lax_bool(value: Any) -> bool | None:
    """A boolean as pydantic's lax mode reads one (true/false, 0/1, "yes"/"off"…); None
    when it is none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def parse_routing(data: Any) -> Routing:
    """``LLM_ROUTING``'s decoded JSON as a :class:`Routing`; ValueError names the offending
    location (never its value). Accepts what ``contract.RoutingTable`` accepts."""
    if not isinstance(data, dict):
        raise ValueError("table")
    for key in data:
        if key not in ("auto", "models"):
            raise ValueError(str(key))
    auto = _lax_bool(data.get("auto", False))
    if auto is None:
        raise ValueError("auto")
    raw = data.get("models", {})
    if not isinstance(raw, dict):
        raise ValueError("models")
    models: dict[Category, str] = {}
    for name, model in raw.items():
        try:
            category = Category(name)
        except ValueError:
            raise ValueError(f"models.{name}") from None
        if not isinstance(model, str):
            raise ValueError(f"models.{name}")
        models[category] = model
    return Routing(auto=auto, models=MappingProxyType(models))


def _routing(env: Mapping[str, str]) -> Routing:
    raw = _get(env, c.LLM_ROUTING)
    if raw is None:
        return Routing()
    try:
        return parse_routing(orjson.loads(raw))
    except orjson.JSONDecodeError:
        raise ConfigError(c.LLM_ROUTING, "is not valid JSON") from None
    except ValueError as exc:
        # Name the offending field, never its value.
        raise ConfigError(c.LLM_ROUTING, f"invalid routing table at {str(exc)!r}") from None


def _mode(env: Mapping[str, str]) -> Mode:
    raw = _get(env, c.LLM_MODE)
    if raw is not None:
        for mode in Mode:
            if raw.lower() == mode.value.lower():
                return mode
        raise ConfigError(c.LLM_MODE, "must be BYO or Managed")
    if all(_get(env, k) for k in c.BYO_SECRET_KEYS):
        return Mode.BYO
    if _get(env, c.BYOLLM_MANAGED_URL):
        return Mode.MANAGED
    raise ConfigError(
        c.LLM_MODE,
        f"unset, and neither the four BYO keys ({', '.join(c.BYO_SECRET_KEYS)}) "
        f"nor {c.BYOLLM_MANAGED_URL} are set",
    )


def load_config(env: Mapping[str, str]) -> RouterConfig:
    """Build the config from an environment mapping; raise :class:`ConfigError`."""
    token = _get(env, c.BYOLLM_ROUTER_TOKEN)
    if token is None:
        raise ConfigError(c.BYOLLM_ROUTER_TOKEN, "is required (the inbound bearer token)")
    mode = _mode(env)
    routing = _routing(env)

    provider: ProviderType | None = None
    azure_version = _get(env, c.LLM_AZURE_API_VERSION) or c.DEFAULT_AZURE_API_VERSION
    if mode is Mode.BYO:
        raw_provider = _get(env, c.LLM_PROVIDER)
        if raw_provider is None:
            raise ConfigError(c.LLM_PROVIDER, "is required in BYO mode")
        try:
            provider = ProviderType(raw_provider.lower())
        except ValueError:
            allowed = ", ".join(p.value for p in ProviderType)
            raise ConfigError(c.LLM_PROVIDER, f"must be one of {allowed}") from None
        raw_base = _get(env, c.LLM_BASE_URL)
        if raw_base is None:
            if provider in c.PROVIDERS_REQUIRING_BASE_URL:
                raise ConfigError(c.LLM_BASE_URL, f"is required for provider {provider.value}")
            raw_base = c.DEFAULT_BASE_URLS[provider]
        base_url = _url(env, c.LLM_BASE_URL, raw_base)
        key = _get(env, c.LLM_API_KEY)
        if key is None:
            raise ConfigError(c.LLM_API_KEY, "is required in BYO mode")
        if not _header_safe(key):
            raise ConfigError(c.LLM_API_KEY, "contains a character not allowed in an HTTP header")
        model = _get(env, c.LLM_MODEL)
        if model is None:
            raise ConfigError(c.LLM_MODEL, "is required in BYO mode")
        if provider is ProviderType.AZURE and not _AZURE_VERSION_RE.match(azure_version):
            raise ConfigError(
                c.LLM_AZURE_API_VERSION, "must look like YYYY-MM-DD or YYYY-MM-DD-preview"
            )
        if provider is ProviderType.AZURE:
            deployment = re.compile(c.AZURE_DEPLOYMENT_PATTERN)
            if not deployment.match(model):
                raise ConfigError(c.LLM_MODEL, "is not a valid Azure deployment name")
            if not all(deployment.match(m) for m in routing.models.values()):
                raise ConfigError(c.LLM_ROUTING, "names a model that is not an Azure deployment")
    else:
        raw_managed = _get(env, c.BYOLLM_MANAGED_URL)
        if raw_managed is None:
            raise ConfigError(c.BYOLLM_MANAGED_URL, "is required in Managed mode")
        base_url = _url(env, c.BYOLLM_MANAGED_URL, raw_managed)
        # The tenant's own key is never used in Managed mode, even if still present.
        key = _get(env, c.BYOLLM_MANAGED_API_KEY)
        if key is not None and not _header_safe(key):
            raise ConfigError(
                c.BYOLLM_MANAGED_API_KEY, "contains a character not allowed in an HTTP header"
            )
        # The platform's default model: requests without a model, or "auto" without a
        # category table, use it (the shared LiteLLM refuses a request without a model).
        model = _get(env, c.BYOLLM_MANAGED_MODEL)

    allowlist = _get(env, c.BYOLLM_UPSTREAM_ALLOWLIST)
    api_server_host = _get(env, c.KUBERNETES_SERVICE_HOST)
    try:
        allow = guard.Allowlist.parse(allowlist, api_server_host)
    except ValueError:
        raise ConfigError(
            c.BYOLLM_UPSTREAM_ALLOWLIST, "has an entry that is not a host or CIDR"
        ) from None
    if mode is Mode.BYO:
        # The static half of the SSRF guard, at start-up; DNS is checked at connect time.
        try:
            guard.check_url(base_url, allow)
        except guard.GuardError as exc:
            raise ConfigError(c.LLM_BASE_URL, f"refused by the SSRF guard ({exc.reason})") from None

    return RouterConfig(
        mode=mode,
        provider=provider,
        base_url=base_url,
        upstream_key=Secret(key) if key is not None else None,
        model=model,
        router_token=Secret(token),
        routing=routing,
        azure_api_version=azure_version,
        allowlist=allowlist,
        api_server_host=api_server_host,
        tenant=_get(env, c.BYOLLM_TENANT) or "",
        upstream_timeout_s=_positive_float(
            env, c.BYOLLM_UPSTREAM_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT_S
        ),
        connect_timeout_s=_positive_float(
            env, c.BYOLLM_UPSTREAM_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT_S
        ),
        max_request_bytes=_positive_int(env, c.BYOLLM_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUEST_BYTES),
        autoroute_timeout_s=_positive_float(
            env, c.BYOLLM_AUTOROUTE_TIMEOUT, DEFAULT_AUTOROUTE_TIMEOUT_S
        ),
        long_context_tokens=_positive_int(
            env, c.BYOLLM_AUTOROUTE_LONG_CONTEXT_TOKENS, DEFAULT_LONG_CONTEXT_TOKENS
        ),
        autoroute_constrained=_constrained(env),
        max_buffered_response_bytes=_positive_int(
            env, c.BYOLLM_MAX_BUFFERED_RESPONSE_BYTES, c.DEFAULT_MAX_BUFFERED_RESPONSE_BYTES
        ),
        client_header_timeout_s=_positive_float(
            env, c.BYOLLM_CLIENT_HEADER_TIMEOUT, c.DEFAULT_CLIENT_HEADER_TIMEOUT_S
        ),
        client_body_timeout_s=_positive_float(
            env, c.BYOLLM_CLIENT_BODY_TIMEOUT, c.DEFAULT_CLIENT_BODY_TIMEOUT_S
        ),
        client_write_timeout_s=_positive_float(
            env, c.BYOLLM_CLIENT_WRITE_TIMEOUT, c.DEFAULT_CLIENT_WRITE_TIMEOUT_S
        ),
        max_connections=_positive_int(env, c.BYOLLM_MAX_CONNECTIONS, c.DEFAULT_MAX_CONNECTIONS),
    )
