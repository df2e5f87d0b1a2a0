"""Portal SDK: manage a tenant's LLMConfig (and its key Secret) from Python.

A portal backend needs five verbs (set, get, delete, toggle, revert to
managed) and must never see the key again once stored. This module depends only on the
``kubernetes`` client (not kopf), writes with server-side apply under its own field
manager, and lets the API server judge every object: a refused field comes back as
:class:`ValidationError` carrying the server's message and the field path.

    from kubernetes import config
    from byollm.client import LLMConfigClient

    llm = LLMConfigClient(config.new_client_from_config(), "tenant-acme")
    llm.set("acme", provider="openai", api_key="sk-...", default_model="gpt-4o-mini")
    view = llm.wait_ready("acme", timeout=60)
    print(view.endpoint, view.api_key_prefix)   # never the key itself
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

from kubernetes import client as k8s

from byollm.api import GROUP, PLURAL, VERSION
from byollm_router.contract import LLM_KEY_LABEL

FIELD_MANAGER: Final = "byollm-portal"
KEY_SECRET_SUFFIX: Final = "-byo-key"
KEY_SECRET_KEY: Final = "apiKey"
PART_OF: Final = {
    "app.kubernetes.io/part-of": "byollm",
    "app.kubernetes.io/managed-by": "byollm-portal",
}


class LLMConfigError(Exception):
    """Any failure of the SDK; ``status`` is the HTTP status from the API server (0 if none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ValidationError(LLMConfigError):
    """The API server (or the SDK, for its own arguments) refused a field.

    ``field`` is the first offending field path (``spec.provider.baseURL``), ``causes``
    every (field, message) pair the server returned.
    """

    def __init__(self, message: str, field: str, causes: list[tuple[str, str]], status: int = 422):
        super().__init__(message, status)
        self.field = field
        self.causes = causes


class NotFoundError(LLMConfigError):
    """The LLMConfig does not exist."""


class NotReadyError(LLMConfigError):
    """``wait_ready`` ran out of time; ``view`` is the last state seen."""

    def __init__(self, message: str, view: LLMConfigView | None) -> None:
        super().__init__(message)
        self.view = view


@dataclass(frozen=True)
class ConditionView:
    """One status condition (Kubernetes conventions)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None


@dataclass(frozen=True)
class LLMConfigView:
    """What a portal may show: never the key, only its first 8 characters."""

    name: str
    namespace: str
    mode: str
    """The desired mode (spec.mode): BYO or Managed."""
    active: bool
    serving_mode: str | None
    """What the router serves now (status.mode): Managed when active is false."""
    provider: str | None
    model: str | None
    base_url: str | None
    api_key_prefix: str | None
    endpoint: str | None
    generation: int
    observed_generation: int | None
    conditions: tuple[ConditionView, ...] = field(default_factory=tuple)

    def condition(self, type_: str) -> ConditionView | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        """Ready=True computed from the current generation (not a stale status)."""
        c = self.condition("Ready")
        return (
            c is not None
            and c.status == "True"
            and self.observed_generation is not None
            and self.observed_generation >= self.generation
        )

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> LLMConfigView:
        meta, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status") or {}
        provider = spec.get("provider") or {}
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            mode=spec.get("mode", "Managed"),
            active=bool(spec.get("active", True)),
            serving_mode=status.get("mode"),
            provider=status.get("provider") or provider.get("type"),
            model=status.get("model") or provider.get("defaultModel"),
            base_url=provider.get("baseURL"),
            api_key_prefix=status.get("apiKeyPrefix"),
            endpoint=status.get("endpoint"),
            generation=int(meta.get("generation", 1)),
            observed_generation=status.get("observedGeneration"),
            conditions=tuple(
                ConditionView(
                    type=c.get("type", ""),
                    status=c.get("status", "Unknown"),
                    reason=c.get("reason", ""),
                    message=c.get("message", ""),
                    observed_generation=c.get("observedGeneration"),
                )
                for c in status.get("conditions") or []
            ),
        )


def key_secret_name(name: str) -> str:
    """The Secret the SDK keeps the tenant's key in (``<name>-byo-key``, key ``apiKey``)."""
    return f"{name}{KEY_SECRET_SUFFIX}"


def _error(status: int, payload: dict[str, Any]) -> LLMConfigError:
    message = str(payload.get("message") or payload.get("reason") or f"HTTP {status}")
    if status == 404:
        return NotFoundError(message, status)
    if status == 422 or payload.get("reason") == "Invalid":
        causes = [
            (str(c.get("field", "")), str(c.get("message", "")))
            for c in (payload.get("details") or {}).get("causes") or []
        ]
        first = causes[0][0] if causes else ""
        return ValidationError(message, first, causes, status)
    return LLMConfigError(message, status)


class LLMConfigClient:
    """LLMConfigs of one namespace (a tenant), with the key Secret managed alongside."""

    def __init__(
        self, api_client: k8s.ApiClient, namespace: str, field_manager: str = FIELD_MANAGER
    ) -> None:
        self.api = api_client
        self.namespace = namespace
        self.field_manager = field_manager

    # --- raw JSON over the ApiClient (the generated models would drop unknown fields) ---

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        m, url, hdrs, data, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api.call_api(m, url, header_params=hdrs, body=data, _request_timeout=30)
            resp.read()  # type: ignore[no-untyped-call]
        except k8s.exceptions.ApiException as e:  # pragma: no cover - transport level
            raise LLMConfigError(f"API request failed: {e.reason}", e.status or 0) from None
        except Exception as e:  # urllib3 connection errors
            raise LLMConfigError(f"cannot reach the API server: {type(e).__name__}") from None
        status = int(resp.status)
        payload: dict[str, Any] = json.loads(resp.data) if resp.data else {}
        if status >= 400:
            raise _error(status, payload)
        return payload

    def _path(self, name: str | None = None) -> str:
        p = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}"
        return f"{p}/{name}" if name else p

    def _secret_path(self, name: str | None = None) -> str:
        p = f"/api/v1/namespaces/{self.namespace}/secrets"
        return f"{p}/{name}" if name else p

    def _apply(self, path: str, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        query = [("fieldManager", self.field_manager), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self._request(
            "PATCH", path, manifest, query, content_type="application/apply-patch+yaml"
        )

    def _get_raw(self, name: str) -> dict[str, Any]:
        return self._request("GET", self._path(name))

    def _secret_exists(self, name: str) -> bool:
        try:
            self._request("GET", self._secret_path(name))
        except NotFoundError:
            return False
        return True

    # --- the verbs -------------------------------------------------------------------

    def set(
        self,
        name: str,
        *,
        provider: str,
        default_model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        routing: dict[str, Any] | None = None,
        active: bool = True,
        azure_api_version: str | None = None,
    ) -> LLMConfigView:
        """Create or update a BYO config and its key Secret together (idempotent).

        The LLMConfig is dry-run first, so a refused field writes nothing (no orphan
        Secret). ``api_key=None`` keeps the stored key (e.g. only the model changes).
        ``routing`` is ``spec.routing`` as in the CRD: ``{"auto": True, "models": {...}}``.
        """
        secret = key_secret_name(name)
        provider_spec: dict[str, Any] = {
            "type": provider,
            "defaultModel": default_model,
            "apiKey": {"secretKeyRef": {"name": secret, "key": KEY_SECRET_KEY}},
        }
        if base_url is not None:
            provider_spec["baseURL"] = base_url
        if azure_api_version is not None:
            provider_spec["azure"] = {"apiVersion": azure_api_version}
        spec: dict[str, Any] = {"mode": "BYO", "active": active, "provider": provider_spec}
        if routing is not None:
            spec["routing"] = routing
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMConfig",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        self._apply(self._path(name), manifest, dry_run=True)
        if api_key is None:
            if not self._secret_exists(secret):
                raise ValidationError(
                    "api_key: required (no key stored yet for this LLMConfig)", "api_key", []
                )
        elif not api_key.strip():
            raise ValidationError("api_key: must not be empty", "api_key", [])
        else:
            self._apply(self._secret_path(secret), self._key_secret(name, api_key, None))
        obj = self._apply(self._path(name), manifest)
        if api_key is not None:
            # Owned by the LLMConfig, so deleting it garbage-collects the key too.
            self._apply(self._secret_path(secret), self._key_secret(name, api_key, obj))
        return LLMConfigView.from_object(obj)

    def _key_secret(self, name: str, api_key: str, owner: dict[str, Any] | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": key_secret_name(name),
            "namespace": self.namespace,
            "labels": {**PART_OF, "byollm.io/llmconfig": name, LLM_KEY_LABEL: "true"},
        }
        if owner is not None:
            meta["ownerReferences"] = [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "LLMConfig",
                    "name": name,
                    "uid": owner["metadata"]["uid"],
                }
            ]
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": {KEY_SECRET_KEY: base64.b64encode(api_key.encode()).decode()},
        }

    def get(self, name: str) -> LLMConfigView:
        """The config as a portal may show it (raises :class:`NotFoundError`)."""
        return LLMConfigView.from_object(self._get_raw(name))

    def list(self) -> list[LLMConfigView]:
        items = self._request("GET", self._path()).get("items", [])
        return [LLMConfigView.from_object(o) for o in items]

    def delete(self, name: str) -> None:
        """Delete the LLMConfig (its router goes with it) and the SDK's key Secret."""
        try:
            self._request("DELETE", self._path(name), query=[("propagationPolicy", "Background")])
        finally:
            with contextlib.suppress(NotFoundError):
                self._request("DELETE", self._secret_path(key_secret_name(name)))

    def revert_to_managed(self, name: str) -> LLMConfigView:
        """Mode Managed: the router's four BYO keys are wiped; the stored key is deleted."""
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMConfig",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"mode": "Managed", "active": True},
        }
        obj = self._apply(self._path(name), manifest)
        with contextlib.suppress(NotFoundError):
            self._request("DELETE", self._secret_path(key_secret_name(name)))
        return LLMConfigView.from_object(obj)

    def toggle(self, name: str, active: bool) -> LLMConfigView:
        """Keep the BYO config but serve Managed (False) or BYO again (True)."""
        self._get_raw(name)  # NotFoundError rather than creating a half object
        obj = self._request(
            "PATCH",
            self._path(name),
            {"spec": {"active": active}},
            [("fieldManager", self.field_manager)],
            content_type="application/merge-patch+json",
        )
        return LLMConfigView.from_object(obj)

    def wait_ready(self, name: str, timeout: float = 60.0, interval: float = 0.5) -> LLMConfigView:
        """Poll until Ready=True for the current generation; :class:`NotReadyError` if not."""
        deadline = time.monotonic() + timeout
        view: LLMConfigView | None = None
        while True:
            try:
                view = self.get(name)
                if view.ready:
                    return view
            except NotFoundError:
                view = None
            if time.monotonic() >= deadline:
                cond = view.condition("Ready") if view else None
                detail = f"{cond.reason}: {cond.message}" if cond else "no Ready condition yet"
                raise NotReadyError(
                    f"{self.namespace}/{name} not Ready after {timeout}s ({detail})", view
                )
            time.sleep(interval)


class AsyncLLMConfigClient:
    """The same verbs for asyncio portals (FastAPI ...): each call runs the synchronous
    client in a worker thread, so the event loop never blocks on the API server."""

    def __init__(
        self, api_client: k8s.ApiClient, namespace: str, field_manager: str = FIELD_MANAGER
    ) -> None:
        self.sync = LLMConfigClient(api_client, namespace, field_manager)

    async def set(
        self,
        name: str,
        *,
        provider: str,
        default_model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        routing: dict[str, Any] | None = None,
        active: bool = True,
        azure_api_version: str | None = None,
    ) -> LLMConfigView:
        return await asyncio.to_thread(
            self.sync.set,
            name,
            provider=provider,
            default_model=default_model,
            api_key=api_key,
            base_url=base_url,
            routing=routing,
            active=active,
            azure_api_version=azure_api_version,
        )

    async def get(self, name: str) -> LLMConfigView:
        return await asyncio.to_thread(self.sync.get, name)

    async def list(self) -> list[LLMConfigView]:
        return await asyncio.to_thread(self.sync.list)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.sync.delete, name)

    async def revert_to_managed(self, name: str) -> LLMConfigView:
        return await asyncio.to_thread(self.sync.revert_to_managed, name)

    async def toggle(self, name: str, active: bool) -> LLMConfigView:
        return await asyncio.to_thread(self.sync.toggle, name, active)

    async def wait_ready(
        self,
        name: str,
        timeout: float = 60.0,  # noqa: ASYNC109 - same signature as the sync client
        interval: float = 0.5,
    ) -> LLMConfigView:
        """Poll with ``asyncio.sleep`` between reads (cancellable)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        view: LLMConfigView | None = None
        while True:
            try:
                view = await self.get(name)
                if view.ready:
                    return view
            except NotFoundError:
                view = None
            if loop.time() >= deadline:
                cond = view.condition("Ready") if view else None
                detail = f"{cond.reason}: {cond.message}" if cond else "no Ready condition yet"
                raise NotReadyError(
                    f"{self.sync.namespace}/{name} not Ready after {timeout}s ({detail})", view
                )
            await asyncio.sleep(interval)
