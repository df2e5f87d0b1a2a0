"""Condition types and reasons, each with the rule for when it is set.

Conditions follow Kubernetes API conventions: ``lastTransitionTime`` moves only when the
status changes, and each carries the ``observedGeneration`` it was computed from, so a
reader can tell a stale condition from a current one.

Summary conditions, for tools that know nothing of byollm (kstatus: Flux health checks,
``kubectl wait``; Argo CD's health check in deploy/argocd/health.lua):

* ``Ready`` (normal-true): the router serves the current spec.
* ``Reconciling`` (abnormal-true): not Ready yet, and the operator is still getting
  there, or retrying something that clears without anyone's help (a rollout, a first
  pass, a transient API error).
* ``Stalled`` (abnormal-true): not Ready, and it stays so until someone changes
  something: the spec, the key Secret, the key itself, or the cluster (a refused write, a
  rollout past its deadline). The reasons that stall are ``STALLED_REASONS``.

At the current generation exactly one of the three is True (``summary``), so kstatus
reads Current, InProgress or Failed without ambiguity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from byollm.api import Condition, ConditionStatus

# --- types ------------------------------------------------------------------------------
READY: Final = "Ready"
"""True when SecretSynced and RouterAvailable are True and CredentialsValid is not False."""
RECONCILING: Final = "Reconciling"
"""True when Ready is False and no detail condition is False for a STALLED_REASONS reason."""
STALLED: Final = "Stalled"
"""True when some detail condition is False for one of STALLED_REASONS (Ready is False)."""
SECRET_SYNCED: Final = "SecretSynced"
"""True when the ``<name>-llm`` Secret holds exactly the current router contract."""
ROUTER_AVAILABLE: Final = "RouterAvailable"
"""True when the router Deployment has rolled out the current config hash and is available."""
CREDENTIALS_VALID: Final = "CredentialsValid"
"""True when an endpoint of the provider that needs the key accepted it; False on 401/403
or 404; Unknown when unreachable or when the provider has no such endpoint."""

TYPES: Final = (READY, RECONCILING, STALLED, SECRET_SYNCED, ROUTER_AVAILABLE, CREDENTIALS_VALID)
DETAIL_TYPES: Final = (SECRET_SYNCED, ROUTER_AVAILABLE, CREDENTIALS_VALID)
"""The conditions Ready, Reconciling and Stalled are derived from."""

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
"""SecretSynced: a write failed in a way a retry can clear (conflict, throttling, server
error, timeout); message says which. The periodic resync retries."""
APPLY_REFUSED: Final = "ApplyRefused"
"""SecretSynced: the API server refused a write for good (invalid, forbidden, quota,
admission); message says which. Needs a change to the spec or the cluster."""
ROLLING_OUT: Final = "RollingOut"
"""RouterAvailable: pods of the current config hash are not all updated and available yet."""
AVAILABLE: Final = "Available"
"""RouterAvailable: the Deployment is available at the current config hash."""
UNAVAILABLE: Final = "Unavailable"
"""RouterAvailable: the Deployment reports Available=False."""
PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
"""RouterAvailable: the Deployment gave up the rollout (its Progressing condition says
ProgressDeadlineExceeded: image cannot be pulled, pods never become ready...)."""
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
INVALID_SPEC: Final = "InvalidSpec"
"""SecretSynced: the stored spec no longer passes the model (an object older than the CRD's
current validation); message names the field."""
PROGRESSING: Final = "Progressing"
"""Reconciling (True): not Ready yet and nothing is known to block it (default reason)."""

STALLED_REASONS: Final = frozenset(
    {
        SECRET_NOT_FOUND,
        SECRET_KEY_NOT_FOUND,
        SECRET_NOT_OPTED_IN,
        UNSEAL_FAILED,
        INVALID_SPEC,
        APPLY_REFUSED,
        PROGRESS_DEADLINE_EXCEEDED,
        INVALID_CREDENTIALS,
        ENDPOINT_NOT_FOUND,
        UPSTREAM_BLOCKED,
    }
)
"""Reasons of a False detail condition that the operator cannot clear by retrying: someone
must change the spec, the key Secret, the key or the cluster. Any other False is progress
or a transient failure (Reconciling). Argo CD's health.lua keeps the same list (tested)."""


def now() -> str:
    """RFC 3339 UTC timestamp with seconds precision, as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    at: datetime | None = None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; lastTransitionTime kept if status is unchanged."""
    old = get(conditions, type_)
    ltt = (
        old.last_transition_time
        if old and old.status == status
        else (at or datetime.now(UTC).replace(microsecond=0))
    )
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=ltt,
        observed_generation=generation,
    )
    out = [c for c in conditions if c.type != type_] + [new]
    order = {t: i for i, t in enumerate(TYPES)}
    return sorted(out, key=lambda c: order.get(c.type, len(order)))


def get(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.type == type_), None)


Verdict = tuple[ConditionStatus, str, str]
"""A condition's (status, reason, message)."""


def ready_from(conditions: Sequence[Condition]) -> Verdict:
    """Derive (status, reason, message) of Ready from the other three conditions."""
    problems = []
    for t in (SECRET_SYNCED, ROUTER_AVAILABLE):
        c = get(conditions, t)
        if c is None or c.status != "True":
            problems.append(f"{t}={c.status} ({c.reason})" if c else f"{t} pending")
    creds = get(conditions, CREDENTIALS_VALID)
    if creds is not None and creds.status == "False":
        problems.append(f"{CREDENTIALS_VALID}=False ({creds.reason})")
    if not problems:
        return "True", RECONCILED, "router serving the current configuration"
    return "False", NOT_READY, "; ".join(problems)


def summary(conditions: Sequence[Condition]) -> tuple[Verdict, Verdict]:
    """(Reconciling, Stalled) from the detail conditions and Ready (set Ready first).
    Exactly one of Ready, Reconciling, Stalled comes out True."""
    ready = get(conditions, READY)
    if ready is not None and ready.status == "True":
        done: Verdict = ("False", RECONCILED, "router serving the current configuration")
        return done, done
    details = [d for d in (get(conditions, t) for t in DETAIL_TYPES) if d is not None]
    stuck = [d for d in details if d.status == "False" and d.reason in STALLED_REASONS]
    if stuck:
        first = stuck[0]
        why = "; ".join(f"{d.type}: {d.message}" for d in stuck)
        return (
            ("False", first.reason, "waiting for a change (see Stalled)"),
            ("True", first.reason, why),
        )
    pending = [
        d
        for d in details
        if d.status != "True" and not (d.type == CREDENTIALS_VALID and d.status != "False")
    ]
    first_reason = pending[0].reason if pending else PROGRESSING
    why = "; ".join(f"{d.type}: {d.message}" for d in pending) or "reconciling"
    return ("True", first_reason, why), ("False", first_reason, "not stalled: progressing")
