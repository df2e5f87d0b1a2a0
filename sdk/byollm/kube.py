"""The one Kubernetes layer of byollm (operator, SDK, CLI, tools): raw JSON over the
official client's ApiClient: GET, list, server-side apply (with dry-run), patches.

The generated kubernetes models are bypassed on purpose: apply bodies and comparisons
work on the plain dicts the builders produce, exactly as the API server stores them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from kubernetes import client

log = logging.getLogger(__name__)

_PLURALS: Final = {
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("byollm.io/v1alpha1", "LLMConfig"): "llmconfigs",
    # installed by tests, benchmarks and `byollm dev` (the operator itself never writes these)
    ("v1", "Namespace"): "namespaces",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Pod"): "pods",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "clusterroles",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "clusterrolebindings",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): "customresourcedefinitions",
}


class KubeError(Exception):
    """An API error; the message carries the server's status text, never a request body."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        causes: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        # (field, message) pairs of an Invalid answer (status.details.causes)
        self.causes = causes or []


class WriteFenced(RuntimeError):
    """A write refused before it was sent: this process may not write now (an operator
    replica that no longer holds the leader Lease). Not a KubeError: nothing is reported
    on the object, since another replica acts on it."""


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """REST path of an object (or its collection when name is None); cluster-scoped when
    namespace is None."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    p = f"{base}{ns}/{_PLURALS[(api_version, kind)]}"
    return f"{p}/{name}" if name else p


def manifest_path(manifest: dict[str, Any]) -> str:
    """REST path of the object a manifest describes."""
    meta = manifest["metadata"]
    return path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])


class Kube:
    """Thin JSON helper over one ApiClient (thread-safe for concurrent requests)."""

    def __init__(self, api: client.ApiClient, field_manager: str) -> None:
        self.api = api
        self.field_manager = field_manager
        # path -> (hash of the manifest we applied, resourceVersion it left): lets
        # apply_if_changed skip the dry-run when neither side moved since.
        self._verified: dict[str, tuple[str, str]] = {}
        self._verified_guard = threading.Lock()
        # object path -> resourceVersion of our own last write to it (echo detection)
        self._own: dict[str, str] = {}
        # Called before every write (not reads, not dry-runs); raises WriteFenced to refuse.
        self.write_fence: Callable[[], None] | None = None

    def request(
        self,
        method: str,
        resource_path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        dry_run = any(k == "dryRun" for k, _ in query or [])
        if method != "GET" and not dry_run and self.write_fence is not None:
            self.write_fence()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        m, url, hdrs, data, _ = self.api.param_serialize(
            method=method,
            resource_path=resource_path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api.call_api(m, url, header_params=hdrs, body=data, _request_timeout=30)
            resp.read()  # type: ignore[no-untyped-call]
        except client.exceptions.ApiException as e:  # pragma: no cover - transport level
            raise KubeError(e.status or 0, str(e.reason), "request failed") from None
        status = int(resp.status)
        payload: dict[str, Any] = json.loads(resp.data) if resp.data else {}
        if status >= 400:
            causes = [
                (str(c.get("field", "")), str(c.get("message", "")))
                for c in (payload.get("details") or {}).get("causes") or []
            ]
            raise KubeError(
                status,
                str(payload.get("reason", "")),
                str(payload.get("message", "")),
                causes,
            )
        if method in ("POST", "PATCH", "PUT") and not dry_run:
            meta = payload.get("metadata") or {}
            if meta.get("resourceVersion") and meta.get("name"):
                p = f"{resource_path}/{meta['name']}" if method == "POST" else resource_path
                with self._verified_guard:
                    if len(self._own) > 200_000:
                        self._own.clear()
                    self._own[p.removesuffix("/status")] = meta["resourceVersion"]
        return payload

    def own_write(self, resource_path: str, resource_version: str | None) -> bool:
        """True when ``resource_version`` is what our own last write to the object left:
        a watch event carrying it is the echo of that write, with nothing new to act on."""
        with self._verified_guard:
            return bool(resource_version) and self._own.get(resource_path) == resource_version

    def get(self, resource_path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", resource_path)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def apply(
        self,
        manifest: dict[str, Any],
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply (this client's field manager by default), forcing ownership."""
        query = [("fieldManager", field_manager or self.field_manager), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            manifest_path(manifest),
            body=manifest,
            query=query,
            content_type="application/apply-patch+yaml",
        )

    def apply_if_changed(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Apply only when the result would differ from the live object.

        A dry-run apply shows exactly what would be stored (defaults, field removals
        included); if that equals the live object, nothing is written.
        """
        meta = manifest["metadata"]
        p = path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        want = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        live = self.get(p)
        if live is not None:
            rv = live.get("metadata", {}).get("resourceVersion", "")
            # Unchanged since we last applied or verified this exact manifest: no dry-run.
            # Any edit by anyone else (drift) changes the resourceVersion.
            with self._verified_guard:
                if self._verified.get(p) == (want, rv):
                    return live, False
            dry = self.apply(manifest, dry_run=True)
            if _comparable(dry) != _comparable(live):
                # A controller may have touched the object (metadata) between the read and
                # the dry-run: compare with what is stored now before writing.
                live = self.get(p) or {}
                rv = live.get("metadata", {}).get("resourceVersion", "")
            if _comparable(dry) == _comparable(live):
                self._remember(p, want, rv)
                return live, False
        result = self.apply(manifest)
        self._remember(p, want, result.get("metadata", {}).get("resourceVersion", ""))
        return result, True

    def _remember(self, p: str, want: str, rv: str) -> None:
        with self._verified_guard:
            if len(self._verified) > 200_000:  # bound memory; entries are only a shortcut
                self._verified.clear()
            self._verified[p] = (want, rv)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        return self.request(
            "POST",
            path(manifest["apiVersion"], manifest["kind"], meta["namespace"]),
            body=manifest,
            query=[("fieldManager", self.field_manager)],
        )

    def json_patch(self, resource_path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request(
            "PATCH",
            resource_path,
            body=ops,
            query=[("fieldManager", self.field_manager)],
            content_type="application/json-patch+json",
        )

    def merge_patch(self, resource_path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.request(
            "PATCH",
            resource_path,
            body=patch,
            query=[("fieldManager", self.field_manager)],
            content_type="application/merge-patch+json",
        )

    def list(self, resource_path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request("GET", resource_path).get("items", [])
        return items


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What an apply of ours can change: not the status (controllers write it; an apply
    never does), not the bookkeeping fields."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata", {}))
    for k in ("managedFields", "resourceVersion"):
        meta.pop(k, None)
    out["metadata"] = meta
    return out
