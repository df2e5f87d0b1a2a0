"""Reconcile one LLMConfig: resolve the key, apply the children, compute the status.

Called by every trigger (the LLMConfig's own events, its key Secret's events, its
children's events, the periodic resync) with just namespace/name: it always reads the
current object, so triggers can race without writing stale state. Writes happen only on
difference (dry-run server-side apply compared with the live object; status compared
field by field), so an idle cluster sees zero writes.

The API key lives only in local variables and in the ``<name>-llm`` Secret's data: it
is never logged, put in an exception, an Event, the status (8-char prefix only) or the
pod template (only inside a sha256 of the config).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from byollm.api import API_VERSION, KIND, Condition, LLMConfigSpec, LLMConfigStatus, ProviderSpec
from byollm.kube import Kube, KubeError, path
from byollm_operator import builders, conditions, faultpoints
from byollm_operator import conditions as c
from byollm_operator.settings import Settings
from byollm_router import contract
from byollm_router.contract import Mode, ProviderType

log = logging.getLogger("byollm.operator")

EventFn = Callable[[dict[str, Any], str, str, str], None]
"""(object, type Normal|Warning, reason, message) -> posts a Kubernetes Event."""


class KeyUnavailable(Exception):
    """The API key cannot be resolved; ``reason`` is a conditions.* constant."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _ProbeMemo:
    key_hash: str
    at: float
    result: c.Verdict


@dataclass
class Reconciler:
    """Everything a reconcile needs, built once at operator start-up."""

    kube: Kube
    settings: Settings
    post_event: EventFn
    unseal: Callable[[str, str, str], str] | None = None
    probe: Callable[[ProviderSpec, str], c.Verdict] | None = None
    # key -> "run again" flag, present while a reconcile of that key is running
    _running: dict[tuple[str, str], bool] = field(default_factory=dict)
    _running_guard: threading.Lock = field(default_factory=threading.Lock)
    _probes: dict[tuple[str, str], _ProbeMemo] = field(default_factory=dict)

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one LLMConfig's children and status in line with its spec.

        Triggers are coalesced per object: one arriving while that object's reconcile runs
        returns at once and makes the running one go round once more (it re-reads
        everything), so a burst of child events costs one extra pass, not one each, and
        no worker thread sits waiting on another's lock.
        """
        key = (namespace, name)
        with self._running_guard:
            if key in self._running:
                self._running[key] = True
                return
            self._running[key] = False
        while True:
            try:
                self._reconcile_once(namespace, name)
            except BaseException:
                with self._running_guard:
                    again = self._running.pop(key)
                    if again:  # a newer trigger came in: serve it rather than drop it
                        self._running[key] = False
                if not again:
                    raise
                log.warning("reconcile %s/%s failed; running again for a newer trigger", *key)
                continue
            with self._running_guard:
                if not self._running[key]:
                    del self._running[key]
                    return
                self._running[key] = False

    def _warn(self, obj: dict[str, Any], reason: str, message: str) -> None:
        """A reconcile that could not bring the router in line: a Warning Event and a log
        line, both with the reason (messages never carry a key)."""
        meta = obj["metadata"]
        log.warning(
            "%s/%s not reconciled: %s: %s", meta["namespace"], meta["name"], reason, message
        )
        self.post_event(obj, "Warning", reason, message)

    def _reconcile_once(self, namespace: str, name: str) -> None:
        obj = self.kube.get(path(API_VERSION, KIND, namespace, name))
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            self._probes.pop((namespace, name), None)
            return  # children go with it (ownerReferences, garbage collector)
        self._reconcile(obj)

    # --- the steps ----------------------------------------------------------------------

    def _reconcile(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        ns, name, generation = meta["namespace"], meta["name"], int(meta.get("generation", 1))
        status = _live_status(obj)
        conds: list[Condition] = list(status.conditions or ())
        try:
            spec = LLMConfigSpec.model_validate(obj.get("spec") or {})
        except ValidationError as e:  # the CRD refuses these; only an old object can hit it
            log.warning("%s/%s not reconciled: InvalidSpec: %s", ns, name, e)
            self._finish(obj, status, conds, generation, None, None, None, invalid=str(e))
            return
        owner = builders.Owner(name=name, namespace=ns, uid=meta["uid"])
        serving = spec.serving_mode()

        api_key: str | None = None
        if serving is Mode.BYO:
            try:
                api_key = self._resolve_key(spec, ns, name)
            except KeyUnavailable as e:
                conds = c.set_condition(
                    conds, c.SECRET_SYNCED, "False", e.reason, e.message, generation
                )
                if _cond_changed(status, conds, c.SECRET_SYNCED):
                    self._warn(obj, e.reason, e.message)
                self._finish(obj, status, conds, generation, spec, None, None)
                return
        kept_prefix: str | None = None
        if serving is Mode.MANAGED and spec.mode is Mode.BYO:
            # Toggled off: the BYO config (and its key) is kept, so keep identifying the key.
            with contextlib.suppress(KeyUnavailable):
                kept_prefix = builders.api_key_prefix(self._resolve_key(spec, ns, name))

        old_hash = status.config_hash
        old_mode = status.mode.value if status.mode else None
        changed: list[str] = []
        try:
            token = self._ensure_token(owner)
            children = builders.build(owner, spec, api_key, self.settings, token)
            if old_hash and old_hash != children.config_hash:  # read before it is rewritten
                live = self.kube.get(path("v1", "Secret", ns, builders.llm_secret_name(name)))
                changed = builders.changed_fields(builders.secret_env(live), children.env)
            applied: dict[str, dict[str, Any]] = {}
            for manifest in children.in_apply_order():
                result, written = self.kube.apply_if_changed(manifest)
                applied[manifest["kind"]] = result
                if written and manifest["kind"] == "Secret":
                    faultpoints.reach(faultpoints.AFTER_LLM_SECRET)
            if serving is Mode.MANAGED:
                self._wipe_byo_keys(obj, applied["Secret"], old_mode)
        except KubeError as e:
            msg = f"applying children failed: {e}"
            reason = c.APPLY_REFUSED if write_refused(e) else c.APPLY_FAILED
            conds = c.set_condition(conds, c.SECRET_SYNCED, "False", reason, msg, generation)
            self._warn(obj, reason, msg)
            self._finish(obj, status, conds, generation, spec, None, None)
            if reason == c.APPLY_FAILED:
                raise  # a passing failure: the caller tries again with backoff
            return

        conds = c.set_condition(
            conds,
            c.SECRET_SYNCED,
            "True",
            c.RECONCILED,
            f"{builders.llm_secret_name(name)} holds the {serving.value} router config",
            generation,
        )
        conds = self._router_condition(
            conds, applied["Deployment"], children.config_hash, generation
        )
        conds = self._credentials_condition(conds, spec, api_key, ns, name, generation)
        creds = c.get(conds, c.CREDENTIALS_VALID)
        if (
            creds is not None
            and creds.status == "False"
            and _cond_changed(status, conds, c.CREDENTIALS_VALID)
        ):
            self._warn(obj, creds.reason, creds.message)

        if old_hash is None:
            self.post_event(
                obj,
                "Normal",
                "Created",
                f"router {builders.router_name(name)} created in {serving.value} mode",
            )
        elif old_hash != children.config_hash:
            self.post_event(
                obj,
                "Normal",
                c.ROLLING_OUT,
                # nothing differs from the live Secret when an earlier run wrote it and
                # died before the Deployment (operator killed mid-apply)
                f"{', '.join(changed) or 'router config'} changed; rolling the router to config "
                f"{children.config_hash[:12]} (was {old_hash[:12]})",
            )
        if old_mode and old_mode != serving.value:
            self.post_event(obj, "Normal", "ModeSwitched", f"{old_mode} -> {serving.value}")
        self._finish(
            obj, status, conds, generation, spec, api_key, children.config_hash, kept_prefix
        )

    def _resolve_key(self, spec: LLMConfigSpec, ns: str, name: str) -> str:
        assert spec.provider is not None  # the CRD and the model guarantee both in BYO
        assert spec.provider.api_key is not None
        source = spec.provider.api_key
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            secret = self.kube.get(path("v1", "Secret", ns, ref.name))
            if secret is None:
                raise KeyUnavailable(
                    c.SECRET_NOT_FOUND,
                    f"spec.provider.apiKey.secretKeyRef: Secret {ns}/{ref.name} not found",
                )
            labels = secret.get("metadata", {}).get("labels") or {}
            if labels.get(contract.LLM_KEY_LABEL) != "true":  # checked before reading data
                raise KeyUnavailable(
                    c.SECRET_NOT_OPTED_IN,
                    f"spec.provider.apiKey.secretKeyRef: Secret {ns}/{ref.name} is not opted "
                    f"in to byollm; label it: kubectl -n {ns} label secret {ref.name} "
                    f"{contract.LLM_KEY_LABEL}=true",
                )
            raw = (secret.get("data") or {}).get(ref.key)
            if not raw:
                raise KeyUnavailable(
                    c.SECRET_KEY_NOT_FOUND,
                    f"spec.provider.apiKey.secretKeyRef: Secret {ns}/{ref.name} has no "
                    f"non-empty key {ref.key!r}",
                )
            try:
                return base64.b64decode(raw).decode().strip()
            except (ValueError, UnicodeDecodeError):
                raise KeyUnavailable(
                    c.SECRET_KEY_NOT_FOUND,
                    f"spec.provider.apiKey.secretKeyRef: key {ref.key!r} is not UTF-8 text",
                ) from None
        assert source.sealed is not None
        if self.unseal is None:
            raise KeyUnavailable(c.UNSEAL_FAILED, "spec.provider.apiKey.sealed: no sealing key")
        try:
            return self.unseal(source.sealed, ns, name)
        except Exception as e:  # SealError; its messages never contain the key or blob
            raise KeyUnavailable(
                c.UNSEAL_FAILED, f"spec.provider.apiKey.sealed: {type(e).__name__}: {e}"
            ) from None

    def _ensure_token(self, owner: builders.Owner) -> str:
        """The router token: created once, never replaced while it exists (a recreated one
        changes the config hash, so the router rolls and reads it)."""
        p = path("v1", "Secret", owner.namespace, builders.token_secret_name(owner.name))
        live = self.kube.get(p)
        raw = ((live or {}).get("data") or {}).get(builders.TOKEN_KEY)
        if raw:
            return base64.b64decode(raw).decode()
        token = builders.new_router_token()
        manifest = builders.token_secret(owner, token)
        if live is None:
            try:
                self.kube.create(manifest)
            except KubeError as e:
                if e.status != 409:
                    raise
                return self._ensure_token(owner)  # made concurrently: use that one
        else:
            self.kube.apply(manifest)
        return token

    def _wipe_byo_keys(
        self, obj: dict[str, Any], secret: dict[str, Any], old_mode: str | None
    ) -> None:
        """Managed: the four BYO keys must be absent, even if another manager co-owns them."""
        data = secret.get("data") or {}
        left = [k for k in contract.BYO_SECRET_KEYS if k in data]
        meta = secret["metadata"]
        if left:
            self.kube.json_patch(
                path("v1", "Secret", meta["namespace"], meta["name"]),
                [{"op": "remove", "path": f"/data/{k}"} for k in left],
            )
        if left or old_mode == Mode.BYO.value:
            self.post_event(
                obj,
                "Normal",
                "Wiped",
                f"BYO keys {', '.join(contract.BYO_SECRET_KEYS)} removed from {meta['name']}",
            )

    def _router_condition(
        self, conds: list[Condition], dep: dict[str, Any], cfg_hash: str, generation: int
    ) -> list[Condition]:
        """RouterAvailable from the Deployment's real status at the current config hash."""
        spec_replicas = int(dep.get("spec", {}).get("replicas", 1))
        st = dep.get("status") or {}
        dep_gen = int(dep.get("metadata", {}).get("generation", 0))
        observed = int(st.get("observedGeneration", 0))
        updated = int(st.get("updatedReplicas", 0))
        available = int(st.get("availableReplicas", 0))
        total = int(st.get("replicas", 0))
        avail_cond = next(
            (x for x in st.get("conditions", []) if x.get("type") == "Available"), None
        )
        progress = next(
            (x for x in st.get("conditions", []) if x.get("type") == "Progressing"), None
        )
        if (
            observed >= dep_gen
            and updated >= spec_replicas
            and available >= spec_replicas
            and (total == updated)
        ):
            return c.set_condition(
                conds,
                c.ROUTER_AVAILABLE,
                "True",
                c.AVAILABLE,
                f"{available}/{spec_replicas} router pods available at config {cfg_hash[:12]}",
                generation,
            )
        if (
            observed >= dep_gen
            and progress is not None
            and progress.get("reason") == c.PROGRESS_DEADLINE_EXCEEDED
        ):
            return c.set_condition(
                conds,
                c.ROUTER_AVAILABLE,
                "False",
                c.PROGRESS_DEADLINE_EXCEEDED,
                f"rollout of config {cfg_hash[:12]} gave up: {progress.get('message', '')}",
                generation,
            )
        if avail_cond is not None and avail_cond.get("status") == "False" and updated == 0:
            return c.set_condition(
                conds,
                c.ROUTER_AVAILABLE,
                "False",
                c.UNAVAILABLE,
                f"Deployment unavailable: {avail_cond.get('message', '')}",
                generation,
            )
        return c.set_condition(
            conds,
            c.ROUTER_AVAILABLE,
            "False",
            c.ROLLING_OUT,
            f"rolling out config {cfg_hash[:12]}: {updated} updated, {available} available, "
            f"{total} total of {spec_replicas}",
            generation,
        )

    def _credentials_condition(
        self,
        conds: list[Condition],
        spec: LLMConfigSpec,
        api_key: str | None,
        ns: str,
        name: str,
        generation: int,
    ) -> list[Condition]:
        if spec.serving_mode() is Mode.MANAGED or api_key is None or spec.provider is None:
            self._probes.pop((ns, name), None)
            return c.set_condition(
                conds,
                c.CREDENTIALS_VALID,
                "Unknown",
                c.MANAGED_MODE,
                "serving the platform's shared LiteLLM",
                generation,
            )
        if not self.settings.credentials_probe_enabled or self.probe is None:
            return c.set_condition(
                conds,
                c.CREDENTIALS_VALID,
                "Unknown",
                c.PROBE_DISABLED,
                "the operator's credentials probe is disabled",
                generation,
            )
        key_hash = builders.config_hash(
            {"k": api_key, "u": spec.provider.effective_base_url(), "t": spec.provider.type}
        )
        memo = self._probes.get((ns, name))
        now = time.monotonic()
        if (
            memo is None
            or memo.key_hash != key_hash
            or (now - memo.at >= self.settings.credentials_probe_period)
        ):
            result = self.probe(spec.provider, api_key)
            memo = _ProbeMemo(key_hash=key_hash, at=now, result=result)
            self._probes[(ns, name)] = memo
        st, reason, message = memo.result
        return c.set_condition(conds, c.CREDENTIALS_VALID, st, reason, message, generation)

    def _finish(
        self,
        obj: dict[str, Any],
        status: LLMConfigStatus,
        conds: list[Condition],
        generation: int,
        spec: LLMConfigSpec | None,
        api_key: str | None,
        cfg_hash: str | None,
        kept_prefix: str | None = None,
        invalid: str | None = None,
    ) -> None:
        """Derive Ready, Reconciling and Stalled, then write the status only if something
        differs."""
        meta = obj["metadata"]
        for t in (c.SECRET_SYNCED, c.ROUTER_AVAILABLE, c.CREDENTIALS_VALID):
            if c.get(conds, t) is None:
                conds = c.set_condition(
                    conds, t, "Unknown", c.PENDING, "not evaluated yet", generation
                )
        if cfg_hash is None:  # key or spec problem: the router was not (re)configured
            sync = c.get(conds, c.SECRET_SYNCED)
            conds = c.set_condition(
                conds,
                c.ROUTER_AVAILABLE,
                "False",
                sync.reason if sync else c.PENDING,
                "router not configured: SecretSynced is False",
                generation,
            )
        if invalid:
            conds = c.set_condition(
                conds, c.SECRET_SYNCED, "False", c.INVALID_SPEC, invalid, generation
            )
        conds = c.set_condition(conds, c.READY, *conditions.ready_from(conds), generation)
        reconciling, stalled = c.summary(conds)
        conds = c.set_condition(conds, c.RECONCILING, *reconciling, generation)
        conds = c.set_condition(conds, c.STALLED, *stalled, generation)
        # Only the fields given here are written; a field given as None is removed.
        fields: dict[str, Any] = {
            "observed_generation": generation,
            "conditions": conds,
            "endpoint": builders.endpoint(meta["name"], meta["namespace"]),
        }
        if spec is not None:
            serving = spec.serving_mode()
            byo = serving is Mode.BYO and spec.provider is not None
            fields["mode"] = serving
            fields["provider"] = spec.provider.type.value if byo and spec.provider else None
            fields["model"] = spec.provider.default_model if byo and spec.provider else None
            fields["api_key_prefix"] = builders.api_key_prefix(api_key) if byo else kept_prefix
        if cfg_hash is not None:
            fields["config_hash"] = cfg_hash
        new = LLMConfigStatus(**fields).model_dump(by_alias=True, mode="json", exclude_unset=True)
        old = status.model_dump(by_alias=True, mode="json")
        patch = {k: v for k, v in new.items() if old.get(k) != v}
        if not patch:
            return
        self.kube.merge_patch(
            path(API_VERSION, KIND, meta["namespace"], meta["name"]) + "/status",
            {"status": patch},
        )


def write_refused(e: KubeError) -> bool:
    """A 4xx the same write will get again (invalid, forbidden, quota, admission); not a
    conflict, a timeout or throttling, which a retry can clear."""
    return 400 <= e.status < 500 and e.status not in (408, 409, 429)


def _live_status(obj: dict[str, Any]) -> LLMConfigStatus:
    """The object's status as the API model; one the model refuses (written by an older
    operator) reads as empty, so this reconcile rewrites it whole."""
    try:
        return LLMConfigStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return LLMConfigStatus()


def _cond_changed(status: LLMConfigStatus, conds: list[Condition], type_: str) -> bool:
    old = c.get(status.conditions or (), type_)
    new = c.get(conds, type_)
    return old is None or new is None or (old.status, old.reason) != (new.status, new.reason)


# --- credentials probe -------------------------------------------------------------------


# Providers whose check endpoint refuses requests without a valid key: a 2xx proves it.
# OpenRouter's /models is public, so its key-information endpoint is used instead; custom
# and Ollama endpoints often serve /models to anyone, so a 2xx there proves nothing.
_VERIFIABLE: frozenset[ProviderType] = frozenset(
    {
        ProviderType.OPENAI,
        ProviderType.AZURE,
        ProviderType.ANTHROPIC,
        ProviderType.OPENROUTER,
        ProviderType.GROQ,
    }
)


def probe_request(provider: ProviderSpec, api_key: str) -> tuple[str, dict[str, str]]:
    """URL and auth headers of an endpoint of the provider that needs the key (pure)."""
    base = provider.effective_base_url().rstrip("/")
    if provider.type is ProviderType.OPENROUTER:
        return f"{base}/key", {"Authorization": f"Bearer {api_key}"}
    if provider.type is ProviderType.AZURE:
        version = (
            provider.azure.api_version if provider.azure else contract.DEFAULT_AZURE_API_VERSION
        )
        return f"{base}/models?api-version={version}", {"api-key": api_key}
    if provider.type is ProviderType.ANTHROPIC:
        return f"{base}/models", {
            "x-api-key": api_key,
            "anthropic-version": contract.ANTHROPIC_VERSION,
        }
    return f"{base}/models", {"Authorization": f"Bearer {api_key}"}


def judge(provider: ProviderType, status: int, endpoint: str) -> c.Verdict:
    """The CredentialsValid (status, reason, message) for the check's HTTP answer (pure)."""
    if status in (401, 403):
        return (
            "False",
            c.INVALID_CREDENTIALS,
            f"provider answered {status} on {endpoint}: key expired, revoked or wrong",
        )
    if status == 404:
        return (
            "False",
            c.ENDPOINT_NOT_FOUND,
            f"provider answered 404 on {endpoint}: spec.provider.baseURL must be the API root "
            "(e.g. https://host/v1), not an endpoint such as /chat/completions",
        )
    if 200 <= status < 300:
        if provider in _VERIFIABLE:
            return "True", c.VALID, f"provider accepted the key on {endpoint}"
        return (
            "Unknown",
            c.NOT_VERIFIABLE,
            f"{endpoint} answered without needing a key: the key cannot be verified "
            f"for provider {provider.value}",
        )
    return "Unknown", c.UNEXPECTED_RESPONSE, f"provider answered {status} on {endpoint}"


def make_probe(settings: Settings) -> Callable[[ProviderSpec, str], c.Verdict]:
    """A credentials check through the router's SSRF guard (same allowlist)."""
    from byollm_router import guard

    # In a pod the kubelet sets KUBERNETES_SERVICE_HOST: the API server is never a provider.
    allow = guard.Allowlist.parse(
        settings.upstream_allowlist, os.environ.get(contract.KUBERNETES_SERVICE_HOST)
    )
    overrides = dict(settings.probe_resolve)

    async def resolver(host: str, port: int) -> list[str]:
        if host in overrides or "*" in overrides:
            return [overrides.get(host) or overrides["*"]]
        return await guard.system_resolver(host, port)

    async def run(provider: ProviderSpec, api_key: str) -> c.Verdict:
        url, headers = probe_request(provider, api_key)
        try:  # static check, then resolve and check every answer (hostnames inside)
            async with asyncio.timeout(settings.credentials_probe_timeout):
                await guard.check_upstream(url, allow, resolver)
        except guard.GuardError as e:
            return "False", c.UPSTREAM_BLOCKED, f"spec.provider.baseURL: {e}"
        except OSError as e:
            return "Unknown", c.UNREACHABLE, f"cannot resolve the provider host: {type(e).__name__}"
        transport = guard.build_transport(allow, resolver=resolver)
        try:
            async with httpx.AsyncClient(
                transport=transport,
                timeout=settings.credentials_probe_timeout,
                follow_redirects=False,
            ) as http:
                resp = await http.get(url, headers=headers)
        except guard.GuardError as e:  # a rebinding answer between check and connect
            return "False", c.UPSTREAM_BLOCKED, f"spec.provider.baseURL: {e}"
        except httpx.HTTPError as e:
            return "Unknown", c.UNREACHABLE, f"{type(e).__name__} calling the models endpoint"
        return judge(provider.type, resp.status_code, httpx.URL(url).path)

    def probe(provider: ProviderSpec, api_key: str) -> c.Verdict:
        return asyncio.run(run(provider, api_key))

    return probe
