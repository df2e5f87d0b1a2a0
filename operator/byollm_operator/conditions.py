"""Condition types and reasons, each with the rule for when it is set.

Conditions follow Kubernetes API conventions: ``lastTransitionTime`` moves only when the
status changes, and each carries the ``observedGeneration`` it was computed from, so a
reader can tell a stale condition from a current one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

# --- types ------------------------------------------------------------------------------
READY: Final = "Ready"
"""True when SecretSynced and RouterAvailable are True and CredentialsValid is not False."""
SECRET_SYNCED: Final = "SecretSynced"
"""True when the ``<name>-llm`` Secret holds exactly the current router contract."""
ROUTER_AVAILABLE: Final = "RouterAvailable"
"""True when the router Deployment has rolled out the current config hash and is available."""
CREDENTIALS_VALID: Final = "CredentialsValid"
"""True when an endpoint of the provider that needs the key accepted it; False on 401/403
or 404; Unknown when unreachable or when the provider has no such endpoint."""

TYPES: Final = (READY, SECRET_SYNCED, ROUTER_AVAILABLE, CREDENTIALS_VALID)

# --- reasons ----------------------------------------------------------------------------
RECONCILED: Final = "Reconciled"
"""Ready/SecretSynced: everything matches the spec."""
MANAGED_MODE: Final = "ManagedMode"
"""CredentialsValid: nothing to check, the router serves the shared LiteLLM."""
SECRET_NOT_FOUND: Final = "SecretNotFound"
"""SecretSynced: spec.provider.apiKey.secretKeyRef names a Secret that does not exist."""
SECRET_KEY_NOT_FOUND: Final = "SecretKeyNotFound"
"""SecretSynced: the Secret exists but lacks the referenced key (or it is empty)."""
SECRET_NOT_OPTED_IN: Final = "SecretNotOptedIn"
"""SecretSynced: the referenced Secret lacks the label ``byollm.io/llm-key: "true"``, so the
operator does not read it (otherwise anyone who may create an LLMConfig could send any
Secret of the namespace to a URL of their choice)."""
UNSEAL_FAILED: Final = "UnsealFailed"
"""SecretSynced: the sealed key cannot be opened with the operator's private key(s)."""
APPLY_FAILED: Final = "ApplyFailed"
"""SecretSynced/RouterAvailable: the API server refused a write; message says which."""
ROLLING_OUT: Final = "RollingOut"
"""RouterAvailable: pods of the current config hash are not all updated and available yet."""
AVAILABLE: Final = "Available"
"""RouterAvailable: the Deployment is available at the current config hash."""
UNAVAILABLE: Final = "Unavailable"
"""RouterAvailable: the Deployment reports Available=False."""
VALID: Final = "Valid"
"""CredentialsValid: the provider answered /models with 2xx."""
INVALID_CREDENTIALS: Final = "InvalidCredentials"
"""CredentialsValid: the provider answered 401 or 403 (expired, revoked or wrong key)."""
UNREACHABLE: Final = "Unreachable"
"""CredentialsValid (Unknown): connect error, timeout, or the host does not resolve."""
UPSTREAM_BLOCKED: Final = "UpstreamBlocked"
"""CredentialsValid (False): the SSRF guard refuses spec.provider.baseURL (e.g. a hostname
that resolves to a loopback, private, link-local or metadata address); the router would
refuse every call too, so Ready is False."""
UNEXPECTED_RESPONSE: Final = "UnexpectedResponse"
"""CredentialsValid (Unknown): an answer that is neither success nor an auth error."""
NOT_VERIFIABLE: Final = "NotVerifiable"
"""CredentialsValid (Unknown): the provider accepted the check but has no endpoint that
needs the key (custom and Ollama endpoints often serve /models to anyone), so success
proves nothing; a 401/403 still sets False."""
ENDPOINT_NOT_FOUND: Final = "EndpointNotFound"
"""CredentialsValid (False): the check endpoint answered 404, so baseURL does not point at
the API root (e.g. it ends in /chat/completions); every call would 404 too."""
PROBE_DISABLED: Final = "ProbeDisabled"
"""CredentialsValid (Unknown): the operator's credentials probe is turned off."""
PENDING: Final = "Pending"
"""Any: not evaluated yet."""
NOT_READY: Final = "NotReady"
"""Ready: some other condition is not satisfied; the message names it."""


def now() -> str:
    """RFC 3339 UTC timestamp with seconds precision, as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with ``type_`` set; lastTransitionTime kept if status is unchanged."""
    old = next((c for c in conditions if c.get("type") == type_), None)
    ltt = old["lastTransitionTime"] if old and old.get("status") == status else (at or now())
    new = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": ltt,
        "observedGeneration": generation,
    }
    out = [c for c in conditions if c.get("type") != type_] + [new]
    order = {t: i for i, t in enumerate(TYPES)}
    return sorted(out, key=lambda c: order.get(c["type"], len(order)))


def get(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.get("type") == type_), None)


def ready_from(conditions: list[dict[str, Any]]) -> tuple[str, str, str]:
    """Derive (status, reason, message) of Ready from the other three conditions."""
    problems = []
    for t in (SECRET_SYNCED, ROUTER_AVAILABLE):
        c = get(conditions, t)
        if c is None or c["status"] != "True":
            problems.append(f"{t}={c['status']} ({c['reason']})" if c else f"{t} pending")
    creds = get(conditions, CREDENTIALS_VALID)
    if creds is not None and creds["status"] == "False":
        problems.append(f"{CREDENTIALS_VALID}=False ({creds['reason']})")
    if not problems:
        return "True", RECONCILED, "router serving the current configuration"
    return "False", NOT_READY, "; ".join(problems)
