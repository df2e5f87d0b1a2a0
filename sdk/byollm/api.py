"""The LLMConfig API: pydantic models that are the one source of the CRD.

``crd_manifest()`` turns the models into a structural OpenAPI v3 schema with CEL rules,
so ``kubectl apply`` of a bad object is refused by the API server with a message naming
the field. The same rules are mirrored in Python (``LLMConfigSpec`` validators) so the SDK
and the operator refuse what the API server refuses. Run ``python -m byollm_dev.generate``
to rewrite the committed CRD copies.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from byollm_router import forbidden
from byollm_router.contract import (
    AZURE_API_VERSION_PATTERN,
    AZURE_DEPLOYMENT_PATTERN,
    DEFAULT_AZURE_API_VERSION,
    DEFAULT_BASE_URLS,
    Category,
    Mode,
    ProviderType,
)

GROUP: Final = "byollm.io"
VERSION: Final = "v1alpha1"
KIND: Final = "LLMConfig"
PLURAL: Final = "llmconfigs"
SINGULAR: Final = "llmconfig"
SHORT_NAMES: Final = ("llmc",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"
API_VERSION: Final = f"{GROUP}/{VERSION}"

# Longest LLMConfig name: the router Service `<name>-router` must be a DNS-1035 label (63).
MAX_NAME_LENGTH: Final = 56
_NAME_RE: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_MODEL_RE: Final = r"^\S+$"
_DNS_SUBDOMAIN_RE: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SECRET_KEY_RE: Final = r"^[-._a-zA-Z0-9]+$"
# Same as byollm.sealing.SEALED_PATTERN (a unit test keeps them equal).
SEALED_RE: Final = r"^v1\.[0-9a-f]{16}\.[A-Za-z0-9+/]+={0,2}$"
# A DNS hostname whose last label starts with a letter: refuses numeric/hex IP spellings
# such as 2130706433, 127.1 or 0x7f.0.0.1 that some resolvers still turn into addresses.
_HOSTNAME_RE: Final = r"^([a-z0-9_]([-a-z0-9_]*[a-z0-9_])?[.])*[a-z]([-a-z0-9]*[a-z0-9])?[.]?$"
MAX_URL_LENGTH: Final = 512
# Hosts that may be reached over plain http: in-cluster Services (self-hosted models).
IN_CLUSTER_SUFFIXES: Final = forbidden.IN_CLUSTER_SUFFIXES
# Names the SSRF guard refuses whatever they resolve to, and literal address ranges a
# baseURL may not name (besides what CEL's isGlobalUnicast already refuses): one table.
FORBIDDEN_HOSTNAMES: Final = forbidden.forbidden_hostnames()
FORBIDDEN_CIDRS: Final = forbidden.crd_cidrs()


def _cel(rule: str, message: str, **extra: str) -> dict[str, Any]:
    return {"rule": rule, "message": message, **extra}


def _matching(regex: str, field: str, words: str) -> tuple[AfterValidator, Any]:
    """Annotated metadata for a string refused unless it matches ``regex``: the message is
    ``field: words``.

    The CRD gets a CEL rule rather than a ``pattern``: the API server's pattern error shows
    the regex and repeats the refused value (for a key pasted in the wrong field, the key).
    A CEL rule's message is only ``words``; Python raises the same words.
    """
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(words)
        return value

    rule = _cel(f"self.matches(r'{regex}')", f"{field}: {words}")
    return AfterValidator(check), Field(json_schema_extra={"x-kubernetes-validations": [rule]})


_MODEL_WORDS: Final = "must be a model id without whitespace, e.g. gpt-4o-mini"
_MODEL_CHECK, _MODEL_RULE = _matching(_MODEL_RE, "spec.provider.defaultModel", _MODEL_WORDS)
ModelId = Annotated[str, Field(min_length=1, max_length=256), _MODEL_CHECK, _MODEL_RULE]
_ROUTING_CHECK, _ROUTING_RULE = _matching(_MODEL_RE, "spec.routing.models", _MODEL_WORDS)
RoutingModelId = Annotated[str, Field(min_length=1, max_length=256), _ROUTING_CHECK, _ROUTING_RULE]
# Every rule under spec.provider.apiKey sits on an object, not on a string: the API server
# reports a failed rule on a string field together with the string (a key, if one was
# pasted there); on an object it reports only the type.
_SEALED_FIELD: Final = "spec.provider.apiKey.sealed"
_SEALED_WORDS: Final = (
    "is not a sealed value (make one with `byollm seal`; a plain key belongs in a Secret "
    "named by secretKeyRef)"
)
_SEALED_CHECK, _ = _matching(SEALED_RE, _SEALED_FIELD, _SEALED_WORDS)
_REF_FIELD: Final = "spec.provider.apiKey.secretKeyRef"
_SECRET_NAME_WORDS: Final = (
    "must be a Secret name: lowercase letters, digits, '-' and '.', starting and ending "
    "with a letter or digit"
)
_SECRET_KEY_WORDS: Final = "must be a Secret data key: letters, digits, '-', '_' and '.' only"
_SECRET_NAME_CHECK, _ = _matching(_DNS_SUBDOMAIN_RE, f"{_REF_FIELD}.name", _SECRET_NAME_WORDS)
_SECRET_KEY_CHECK, _ = _matching(_SECRET_KEY_RE, f"{_REF_FIELD}.key", _SECRET_KEY_WORDS)
_AZURE_CHECK, _AZURE_RULE = _matching(
    AZURE_API_VERSION_PATTERN,
    "spec.provider.azure.apiVersion",
    f"must be an api-version date such as {DEFAULT_AZURE_API_VERSION} or "
    f"{DEFAULT_AZURE_API_VERSION}-preview",
)


# Endpoint paths a baseURL must stop before (the router appends them).
ENDPOINT_SUFFIXES: Final = (
    "/chat/completions",
    "/completions",
    "/messages",
    "/models",
    "/embeddings",
    "/responses",
)
_ENDPOINT_RE: Final = "(" + "|".join(re.escape(e) for e in ENDPOINT_SUFFIXES) + ")/*$"
# Whitespace as RE2 (CEL) and Python both read it, Unicode separators included.
_WHITESPACE_RE: Final = r"[\s\p{Z}]"
_WHITESPACE_MESSAGE: Final = (
    "spec.provider.baseURL: must not contain whitespace (a space, tab or newline pasted "
    "with the URL?)"
)
_ENDPOINT_MESSAGE: Final = (
    "spec.provider.baseURL: must end before the endpoint path: drop the trailing "
    + ", ".join(ENDPOINT_SUFFIXES)
    + " (write e.g. https://api.openai.com/v1; the router adds the endpoint)"
)


def _base_url_extra_rules() -> list[Any]:
    """Rules on ``spec.provider.baseURL`` besides the address rules: no whitespace anywhere,
    no endpoint path at the end."""
    return [
        _cel(f"!self.matches(r'{_WHITESPACE_RE}')", _WHITESPACE_MESSAGE),
        _cel(f"!self.lowerAscii().matches(r'{_ENDPOINT_RE}')", _ENDPOINT_MESSAGE),
    ]


def _base_url_rules() -> list[Any]:
    """CEL rules on ``spec.provider.baseURL``; DNS-based checks happen again at connect time.

    The API server's cost estimator treats ``url(self).getHostname()`` as unbounded, so the
    host is cut out of ``self`` (bounded by maxLength) with split(): the authority is the
    third ``/``-field, minus a port or IPv6 brackets. CRD CEL has no ``cel.bind``, hence the
    repetition.
    """
    f = "spec.provider.baseURL"
    a = "self.split('/')[2]"
    h = f"({a}.startsWith('[') ? {a}.substring(1).split(']')[0] : {a}.split(':')[0])"
    lh = f"{h}.lowerAscii()"
    parsed = "isURL(self) && size(self.split('/')) >= 3"
    in_cluster = " || ".join(f"{lh}.endsWith('{s}')" for s in IN_CLUSTER_SUFFIXES)
    cidrs = " && ".join(f"!cidr('{c}').containsIP({h})" for c in FORBIDDEN_CIDRS)
    names = ", ".join(f"'{n}'" for n in FORBIDDEN_HOSTNAMES)
    return [
        _cel(
            f"{parsed} && url(self).getScheme() in ['http', 'https'] && "
            "url(self).getHostname() != ''",
            f"{f}: must be an absolute http(s) URL with a host",
        ),
        _cel(
            f"!({parsed}) || url(self).getScheme() == 'https' || (!isIP({h}) && ({in_cluster}))",
            f"{f}: must use https (plain http only for in-cluster Services ending in "
            + " or ".join(IN_CLUSTER_SUFFIXES)
            + ")",
        ),
        _cel(
            "!self.contains('@') && !self.contains('?') && !self.contains('#')",
            f"{f}: must not carry credentials, a query or a fragment",
        ),
        _cel(
            f"!({parsed}) || !isIP({h}) || (ip({h}).isGlobalUnicast() && {cidrs})",
            f"{f}: must not name a loopback, private, link-local, metadata, CGNAT or "
            "unique-local address",
        ),
        _cel(
            f"!({parsed}) || isIP({h}) || "
            f"({lh}.matches('{_HOSTNAME_RE}') && !({lh} in [{names}]) && "
            f"!{lh}.endsWith('.localhost') && !{lh}.endsWith('.localhost.') && "
            f"!{lh}.startsWith('{forbidden.CLUSTER_HOSTNAME_PREFIX}'))",
            f"{f}: host must be a DNS name or a plain IP address, not localhost, a metadata or "
            "cluster API server name, or a numeric/hex address spelling",
        ),
    ]


class _Model(BaseModel):
    # hide_input_in_errors: an error's text never repeats a value (it could be a key).
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        use_enum_values=False,
        frozen=True,
        hide_input_in_errors=True,
    )


class SecretKeyRef(_Model):
    """A key in a Secret in the LLMConfig's namespace."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"self.name.matches(r'{_DNS_SUBDOMAIN_RE}')",
                    f"{_REF_FIELD}.name: {_SECRET_NAME_WORDS}",
                ),
                _cel(
                    f"self.key.matches(r'{_SECRET_KEY_RE}')",
                    f"{_REF_FIELD}.key: {_SECRET_KEY_WORDS}",
                ),
            ]
        }
    )

    name: Annotated[str, _SECRET_NAME_CHECK] = Field(
        description="Name of the Secret (same namespace as the LLMConfig) holding the API key.",
        max_length=253,
    )
    key: Annotated[str, _SECRET_KEY_CHECK] = Field(
        default="apiKey",
        description="Key within the Secret whose value is the API key. Defaults to apiKey.",
        max_length=253,
    )


class ApiKeySource(_Model):
    """Where the provider API key comes from: exactly one of secretKeyRef or sealed."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.secretKeyRef) != has(self.sealed)",
                    "spec.provider.apiKey: set exactly one of secretKeyRef or sealed",
                ),
                # On the object, not on the string: the API server reports a failed rule
                # on a string field with the string's value (the key, if one was pasted).
                _cel(
                    f"!has(self.sealed) || self.sealed.matches(r'{SEALED_RE}')",
                    f"{_SEALED_FIELD}: {_SEALED_WORDS}",
                ),
            ]
        }
    )

    secret_key_ref: SecretKeyRef | None = Field(
        default=None,
        alias="secretKeyRef",
        description="Read the key from a Secret (e.g. made by sealed-secrets or External "
        "Secrets). Rotating the value there rolls the router.",
    )
    # No pattern or minLength here: the API server's messages for those repeat the value,
    # and a raw key pasted into this field would land in terminals and CI logs.
    sealed: Annotated[str, _SEALED_CHECK] | None = Field(
        default=None,
        description="The key encrypted to the operator's public key (ConfigMap "
        "byollm-sealing-public-key), bound to this namespace and name; safe to keep in git.",
        max_length=8192,
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKeySource:
        if (self.secret_key_ref is None) == (self.sealed is None):
            raise ValueError("spec.provider.apiKey: set exactly one of secretKeyRef or sealed")
        return self


class AzureSpec(_Model):
    """Azure OpenAI specifics."""

    api_version: Annotated[str, _AZURE_CHECK, _AZURE_RULE] = Field(
        default=DEFAULT_AZURE_API_VERSION,
        alias="apiVersion",
        description="Azure OpenAI REST api-version sent with every call.",
        max_length=32,
    )


class ProviderSpec(_Model):
    """The tenant's LLM provider."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!(self.type in ['custom', 'azure']) || has(self.baseURL)",
                    "spec.provider.baseURL: required when spec.provider.type is custom or azure",
                    fieldPath=".baseURL",
                    reason="FieldValueRequired",
                ),
                _cel(
                    "!has(self.azure) || self.type == 'azure'",
                    "spec.provider.azure: only allowed when spec.provider.type is azure",
                    fieldPath=".azure",
                ),
            ]
        }
    )

    type: ProviderType = Field(
        description="Provider wire format and defaults: openai, azure, anthropic, openrouter, "
        "groq, ollama or custom (any OpenAI-compatible endpoint)."
    )
    base_url: ModelId | None = Field(
        default=None,
        alias="baseURL",
        description="Provider base URL ending before /chat/completions (e.g. "
        "https://openrouter.ai/api/v1). Defaulted per type; required for custom and azure. "
        "Must be https (plain http only for in-cluster *.svc Services) and must not name a "
        "loopback, private, link-local or metadata address.",
        max_length=MAX_URL_LENGTH,
        json_schema_extra={"x-kubernetes-validations": _base_url_rules() + _base_url_extra_rules()},
    )
    default_model: ModelId | None = Field(
        default=None,
        alias="defaultModel",
        description="Model id used when a request names none (required in BYO mode), "
        "e.g. gpt-4o-mini or qwen/qwen3-30b-a3b-instruct.",
    )
    api_key: ApiKeySource | None = Field(
        default=None,
        alias="apiKey",
        description="The provider API key: a Secret reference or a sealed value (required in "
        "BYO mode). Only its first 8 characters are ever shown (status.apiKeyPrefix).",
    )
    azure: AzureSpec | None = Field(
        default=None, description="Azure OpenAI settings; only for type azure."
    )

    @model_validator(mode="after")
    def _rules(self) -> ProviderSpec:
        if self.type in {ProviderType.CUSTOM, ProviderType.AZURE} and self.base_url is None:
            raise ValueError(
                "spec.provider.baseURL: required when spec.provider.type is custom or azure"
            )
        if self.azure is not None and self.type != ProviderType.AZURE:
            raise ValueError("spec.provider.azure: only allowed when spec.provider.type is azure")
        if self.base_url is not None and (problem := base_url_problem(self.base_url)):
            raise ValueError(f"spec.provider.baseURL: {problem}")
        return self

    def effective_base_url(self) -> str:
        """The baseURL the router uses: the given one, else the provider's public default."""
        return self.base_url or DEFAULT_BASE_URLS[self.type]


class RoutingModels(_Model):
    """Which model serves each auto-router category; a missing one falls back to defaultModel."""

    fast: RoutingModelId | None = Field(
        default=None, description="Low-latency model; also runs the classifier."
    )
    balanced: RoutingModelId | None = Field(
        default=None, description="General model; the fallback category."
    )
    reasoning: RoutingModelId | None = Field(
        default=None, description="Model for multi-step reasoning."
    )
    long_context: RoutingModelId | None = Field(
        default=None,
        alias="longContext",
        description="Model for long inputs.",
    )
    vision: RoutingModelId | None = Field(
        default=None, description="Model for requests with image parts."
    )
    code: RoutingModelId | None = Field(default=None, description="Model for programming requests.")

    def by_category(self) -> dict[Category, str]:
        """Set entries keyed by the contract's Category (the LLM_ROUTING keys)."""
        dumped = self.model_dump(by_alias=True, exclude_none=True)
        return {Category(k): v for k, v in dumped.items()}


class RoutingSpec(_Model):
    """The auto-router (model "auto"): six categories, each mapped to a model."""

    auto: bool = Field(
        default=False,
        description='When true, a request without a model is auto-routed like model "auto".',
    )
    models: RoutingModels = Field(default_factory=RoutingModels, description="Model per category.")


# A non-negative Kubernetes quantity (apimachinery's syntax without the sign): refused by
# the CRD, so a junk value never reaches the Deployment (where it would fail mid-apply).
QUANTITY_RE: Final = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class ResourceList(_Model):
    """Compute quantities (Kubernetes quantity syntax)."""

    cpu: int | str | None = Field(
        default=None,
        description="CPU, e.g. 100m or 1.",
        json_schema_extra={"pattern": QUANTITY_RE, "minimum": 0},
    )
    memory: int | str | None = Field(
        default=None,
        description="Memory, e.g. 128Mi.",
        json_schema_extra={"pattern": QUANTITY_RE, "minimum": 0},
    )

    @model_validator(mode="after")
    def _quantities(self) -> ResourceList:
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            bad = value < 0 if isinstance(value, int) else not re.match(QUANTITY_RE, value or "0")
            if bad:
                raise ValueError(
                    f"spec.router.resources: {name} must be a non-negative quantity "
                    "such as 100m, 0.5 or 128Mi"
                )
        return self


class Resources(_Model):
    """Router container resources."""

    requests: ResourceList | None = Field(default=None, description="Requested resources.")
    limits: ResourceList | None = Field(default=None, description="Resource limits.")


class RouterSpec(_Model):
    """The dedicated router Deployment. Changing it never rolls the config hash."""

    replicas: int = Field(default=1, ge=1, le=20, description="Router pods (1-20).")
    resources: Resources | None = Field(
        default=None, description="Router container resources; operator defaults if absent."
    )


# Label keys and values as the API server checks them on the NetworkPolicy; refused by the
# CRD so a bad selector never fails mid-apply.
LABEL_VALUE_RE: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
LABEL_KEY_RE: Final = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_RE)]


class LabelSelectorRequirement(_Model):
    """One label selector requirement (as in Kubernetes LabelSelector)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.operator in ['In', 'NotIn'] ? "
                    "(has(self.values) && size(self.values) > 0) : "
                    "(!has(self.values) || size(self.values) == 0)",
                    "spec.access.podSelector.matchExpressions: values must be non-empty for "
                    "In/NotIn and empty for Exists/DoesNotExist",
                )
            ]
        }
    )

    key: str = Field(description="Label key.", min_length=1, max_length=317, pattern=LABEL_KEY_RE)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[LabelValue] | None = Field(
        default=None,
        description="Values for In/NotIn; empty for Exists/DoesNotExist.",
        max_length=64,
    )

    @model_validator(mode="after")
    def _values(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                "spec.access.podSelector.matchExpressions: values must be non-empty for "
                "In/NotIn and empty for Exists/DoesNotExist"
            )
        return self


class LabelSelector(_Model):
    """A Kubernetes label selector; empty selects every pod in the namespace."""

    match_labels: dict[str, LabelValue] | None = Field(
        default=None,
        alias="matchLabels",
        description="Labels the pods must carry.",
        json_schema_extra={
            "maxProperties": 32,
            "x-kubernetes-validations": [
                _cel(
                    f"self.all(k, size(k) <= 317 && k.matches('{LABEL_KEY_RE}'))",
                    "spec.access.podSelector.matchLabels: keys must be label keys "
                    "([prefix/]name, name at most 63 characters of [-A-Za-z0-9_.])",
                )
            ],
        },
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None,
        alias="matchExpressions",
        description="Set-based requirements.",
        max_length=16,
    )

    @model_validator(mode="after")
    def _keys(self) -> LabelSelector:
        for k in self.match_labels or {}:
            if len(k) > 317 or not re.match(LABEL_KEY_RE, k):
                raise ValueError(
                    "spec.access.podSelector.matchLabels: keys must be label keys "
                    "([prefix/]name, name at most 63 characters of [-A-Za-z0-9_.])"
                )
        return self


class AccessSpec(_Model):
    """Who may call the router (NetworkPolicy ingress); the bearer token is still required."""

    pod_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        alias="podSelector",
        description="Pods in this namespace allowed to reach the router; empty = all pods "
        "of the namespace.",
    )


AZURE_DEPLOYMENT_RULE: Final = (
    "spec.provider.defaultModel: with provider azure, it and every spec.routing.models entry "
    "must be a deployment name: 2 to 64 letters, digits, '.', '_' or '-', starting with a "
    "letter or digit"
)


def _azure_ok(expr: str) -> str:
    return f"{expr}.matches('{AZURE_DEPLOYMENT_PATTERN}')"


_SPEC_RULES: Final[list[Any]] = [
    _cel(
        "self.mode != 'BYO' || has(self.provider)",
        "spec.provider: required when spec.mode is BYO",
        fieldPath=".provider",
        reason="FieldValueRequired",
    ),
    _cel(
        "self.mode != 'BYO' || !has(self.provider) || has(self.provider.defaultModel)",
        "spec.provider.defaultModel: required when spec.mode is BYO",
        fieldPath=".provider.defaultModel",
        reason="FieldValueRequired",
    ),
    _cel(
        "self.mode != 'BYO' || !has(self.provider) || has(self.provider.apiKey)",
        "spec.provider.apiKey: required when spec.mode is BYO (secretKeyRef or sealed)",
        fieldPath=".provider.apiKey",
        reason="FieldValueRequired",
    ),
    # Azure puts the model in the URL path (/openai/deployments/<model>/...): a name that
    # is not a deployment name (".", "..", slashes) would walk the path.
    _cel(
        "!has(self.provider) || self.provider.type != 'azure' || ("
        + " && ".join(
            [f"(!has(self.provider.defaultModel) || {_azure_ok('self.provider.defaultModel')})"]
            + [
                f"(!has(self.routing) || !has(self.routing.models) || "
                f"!has(self.routing.models.{c.value}) || "
                f"{_azure_ok(f'self.routing.models.{c.value}')})"
                for c in Category
            ]
        )
        + ")",
        AZURE_DEPLOYMENT_RULE,
        fieldPath=".provider.defaultModel",
    ),
]


class LLMConfigSpec(_Model):
    """Desired LLM configuration of one tenant."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    mode: Mode = Field(
        default=Mode.MANAGED,
        description="BYO: a dedicated router calls the tenant's provider directly. Managed: "
        "calls go through the platform's shared LiteLLM and the BYO keys are wiped.",
    )
    active: bool = Field(
        default=True,
        description="false keeps the BYO configuration but serves Managed (a toggle).",
    )
    provider: ProviderSpec | None = Field(
        default=None, description="The tenant's provider (required in BYO mode)."
    )
    routing: RoutingSpec = Field(
        default_factory=RoutingSpec, description="Auto-router model table."
    )
    router: RouterSpec = Field(default_factory=RouterSpec, description="Router Deployment sizing.")
    access: AccessSpec = Field(
        default_factory=AccessSpec, description="Which pods may call the router."
    )

    @model_validator(mode="after")
    def _byo_rules(self) -> LLMConfigSpec:
        if self.mode == Mode.BYO:
            if self.provider is None:
                raise ValueError("spec.provider: required when spec.mode is BYO")
            if self.provider.default_model is None:
                raise ValueError("spec.provider.defaultModel: required when spec.mode is BYO")
            if self.provider.api_key is None:
                raise ValueError(
                    "spec.provider.apiKey: required when spec.mode is BYO (secretKeyRef or sealed)"
                )
        if self.provider is not None and self.provider.type is ProviderType.AZURE:
            names = [self.provider.default_model, *self.routing.models.by_category().values()]
            if any(n is not None and not re.match(AZURE_DEPLOYMENT_PATTERN, n) for n in names):
                raise ValueError(AZURE_DEPLOYMENT_RULE)
        return self

    def serving_mode(self) -> Mode:
        """What the router serves: BYO only when mode is BYO and the config is active."""
        return Mode.BYO if self.mode == Mode.BYO and self.active else Mode.MANAGED


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_Model):
    """A status condition following Kubernetes API conventions."""

    type: str = Field(
        description="Ready, Reconciling, Stalled, SecretSynced, RouterAvailable or "
        "CredentialsValid.",
        max_length=316,
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase machine-readable cause.", max_length=1024)
    message: str = Field(default="", description="Human-readable detail.", max_length=32768)
    last_transition_time: datetime = Field(
        alias="lastTransitionTime", description="When status last changed."
    )
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        ge=0,
        description="metadata.generation this condition was computed from; older means stale.",
    )


class LLMConfigStatus(_Model):
    """Observed state, written by the operator only."""

    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="metadata.generation last reconciled; less than generation means the "
        "status is stale.",
    )
    mode: Mode | None = Field(
        default=None, description="Mode being served (Managed when active is false)."
    )
    provider: str | None = Field(default=None, description="Provider type being served.")
    model: str | None = Field(default=None, description="Default model being served.")
    api_key_prefix: str | None = Field(
        default=None,
        alias="apiKeyPrefix",
        max_length=8,
        description="First 8 characters of the API key, to identify it (also while active is "
        "false: the key is kept); never more.",
    )
    endpoint: str | None = Field(
        default=None, description="OpenAI-compatible base URL of the tenant's router."
    )
    config_hash: str | None = Field(
        default=None,
        alias="configHash",
        description="Hash of everything the router reads (the key only as a hash); a change "
        "rolls the router pods.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready (serving the current spec), Reconciling (True: still getting there), "
        "Stalled (True: needs a change by someone: spec, key Secret, key or cluster) - at the "
        "current generation exactly one of the three is True, as kstatus (Flux) and "
        "`kubectl wait --for=condition=Ready` expect - and the details SecretSynced, "
        "RouterAvailable, CredentialsValid.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class LLMConfig(_Model):
    """An LLMConfig object as read from the API (metadata left as a plain dict)."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: LLMConfigSpec = Field(default_factory=LLMConfigSpec)
    status: LLMConfigStatus | None = None


# --- Python mirror of the baseURL CEL rules --------------------------------------------


def base_url_problem(url: str) -> str | None:
    """Return why ``url`` is refused as a baseURL (mirrors the CEL rules), or None."""
    if any(ch.isspace() or unicodedata.category(ch).startswith("Z") for ch in url):
        return _WHITESPACE_MESSAGE.removeprefix("spec.provider.baseURL: ")
    if re.search(_ENDPOINT_RE, url.lower()):
        return _ENDPOINT_MESSAGE.removeprefix("spec.provider.baseURL: ")
    if "@" in url or "?" in url or "#" in url:
        return "must not carry credentials, a query or a fragment"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "must be an absolute http(s) URL with a host"
    if parts.scheme not in {"http", "https"} or not host:
        return "must be an absolute http(s) URL with a host"
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if parts.scheme == "http" and (
        addr is not None or not host.lower().endswith(IN_CLUSTER_SUFFIXES)
    ):
        return "must use https (plain http only for in-cluster Services)"
    if addr is not None:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return "must not name an IPv4-mapped IPv6 address"
        if (
            addr.is_loopback
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_unspecified
            or any(addr in ipaddress.ip_network(c) for c in FORBIDDEN_CIDRS)
        ):
            return (
                "must not name a loopback, private, link-local, metadata, CGNAT or "
                "unique-local address"
            )
        return None
    h = host.lower()
    if (
        not re.match(_HOSTNAME_RE, h)
        or h in FORBIDDEN_HOSTNAMES
        or h.rstrip(".").endswith(".localhost")
        or h.startswith(forbidden.CLUSTER_HOSTNAME_PREFIX)
    ):
        return "host must be a DNS name or a plain IP address"
    return None


# --- CRD generation ---------------------------------------------------------------------

_KEEP: Final = {
    "type",
    "maxProperties",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "anyOf",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON-schema node into a structural OpenAPI v3 node."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) == 1:
            inner = _structural(branches[0], defs)
            node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
        elif {b.get("type") for b in branches} == {"integer", "string"}:
            node["x-kubernetes-int-or-string"] = True
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        else:  # pragma: no cover - guarded by the unit test on the generated schema
            raise ValueError(f"cannot express anyOf {branches} structurally")
    if node.get("default", ...) is None:
        del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _structural(value, defs)
        elif key in _KEEP or key.startswith("x-kubernetes-"):
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    if "default" in out and isinstance(out["default"], dict) and not out["default"]:
        # An empty-object default lets nested defaults apply (e.g. spec.router.replicas).
        out["default"] = {}
    return out


def _object_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _structural(schema, defs)


def crd_manifest() -> dict[str, Any]:
    """The CustomResourceDefinition for LLMConfig, generated from the models."""
    spec_schema = _object_schema(LLMConfigSpec)
    status_schema = _object_schema(LLMConfigStatus)
    # Served until the operator first writes status: generation 1 vs observed 0 reads as
    # "in progress" to kstatus (Flux) and Argo CD, not as a finished object without status.
    status_schema["default"] = {"observedGeneration": 0}
    for name in ("routing", "router", "access"):
        spec_schema["properties"][name]["default"] = {}
    spec_schema["properties"]["routing"]["properties"]["models"]["default"] = {}
    spec_schema["properties"]["access"]["properties"]["podSelector"]["default"] = {}
    root: dict[str, Any] = {
        "type": "object",
        "description": "LLMConfig selects, per tenant namespace, the platform's managed LLM or "
        "the tenant's own provider (BYO) served by a dedicated router.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "maxLength": MAX_NAME_LENGTH,
                        "pattern": _NAME_RE,
                        "description": f"DNS-1035 label of at most {MAX_NAME_LENGTH} "
                        "characters: the router Service is <name>-router.",
                    }
                },
            },
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    ready = '.status.conditions[?(@.type=="Ready")]'
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "byollm"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["byollm"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Mode",
                            "type": "string",
                            "jsonPath": ".status.mode",
                            "description": "Mode being served",
                        },
                        {
                            "name": "Provider",
                            "type": "string",
                            "jsonPath": ".status.provider",
                            "description": "Provider being served",
                        },
                        {
                            "name": "Model",
                            "type": "string",
                            "jsonPath": ".status.model",
                            "description": "Default model",
                        },
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": f"{ready}.status",
                            "description": "Ready condition status",
                        },
                        {
                            "name": "Reason",
                            "type": "string",
                            "jsonPath": f"{ready}.reason",
                            "priority": 1,
                            "description": "Ready condition reason",
                        },
                        {
                            "name": "Endpoint",
                            "type": "string",
                            "jsonPath": ".status.endpoint",
                            "priority": 1,
                            "description": "Router endpoint",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as the YAML committed under crds/ and the chart."""
    header = "# Generated by `python -m byollm_dev.generate` from byollm/api.py. Do not edit.\n"
    return header + yaml.safe_dump(crd_manifest(), sort_keys=False, width=100)
