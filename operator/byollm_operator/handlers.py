"""kopf handlers: thin triggers into ``Reconciler.reconcile(namespace, name)``.

Only watch-event handlers are used (no on.create/update, no timers): they keep no state
on the objects, so there are no finalizers, no kopf annotations and no status writes of
kopf's own; garbage collection of the children is left to ownerReferences. Triggers:

* the LLMConfig's own events (including the initial listing: the "resume" after restart);
* events of an opted-in key Secret (label ``byollm.io/llm-key=true``) named by some
  LLMConfig's ``secretKeyRef`` (an index, not a poll): rotating or deleting the key
  re-reconciles and rolls or flags the router;
* events of the children (label ``app.kubernetes.io/managed-by=byollm-operator``): edits
  and deletions are put back, Deployment progress updates RouterAvailable;
* a periodic resync (safety net; writes only on drift) and the credentials re-check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any, cast

import kopf
import kubernetes
import urllib3

from byollm.api import GROUP, PLURAL, VERSION
from byollm.kube import Kube, KubeError, WriteFenced, path
from byollm_operator import builders, conditions, leadership
from byollm_operator.reconcile import Reconciler, make_probe
from byollm_operator.retry import Retries
from byollm_operator.settings import Settings
from byollm_router import contract

log = logging.getLogger("byollm.operator")
CHILD_LABELS = {builders.LABEL_MANAGED_BY: builders.MANAGED_BY}
REPORTING_COMPONENT = builders.MANAGED_BY
"""Events' source.component and reportingController (the "From" of kubectl describe)."""
REPORTING_INSTANCE = socket.gethostname()[:128]
"""Events' reportingInstance: the operator pod's name."""


def _reconciler(memo: Any) -> Reconciler:
    rec: Reconciler = memo.reconciler
    return rec


def _post_event(obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(cast(Any, obj), type=type_, reason=reason, message=message)


def _event_poster(kube: Kube) -> Callable[[dict[str, Any], str, str, str], None]:
    """kopf.event inside kopf's per-object tasks; a direct POST elsewhere (the resync loop
    runs outside them, where kopf.event raises LookupError and would abort the reconcile)."""

    def post(obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        try:
            _post_event(obj, type_, reason, message)
            return
        except LookupError:
            pass
        meta, now = obj["metadata"], conditions.now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj.get("kind", "LLMConfig"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "action": "Reconcile",
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": REPORTING_INSTANCE,
            "source": {"component": REPORTING_COMPONENT},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body)
        except KubeError as e:
            log.warning("posting event %s failed: %s", reason, e)

    return post


def _load_sealing(kube: Kube, settings: Settings) -> Any:
    """Create the sealing key Secret once (in our namespace) and publish the public key."""
    try:
        from byollm import sealing
    except ImportError:  # pragma: no cover - sealing lands separately
        return None
    p = path("v1", "Secret", settings.namespace, settings.sealing_secret)
    secret = kube.get(p)
    if secret is None:
        ring = sealing.KeyRing.generate()
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": settings.sealing_secret,
                "namespace": settings.namespace,
                "labels": {builders.LABEL_MANAGED_BY: builders.MANAGED_BY + "-keys"},
            },
            "type": "Opaque",
            "data": {sealing.SECRET_DATA_KEY: base64.b64encode(ring.to_pem()).decode()},
        }
        try:
            kube.create(manifest)
        except KubeError as e:
            if e.status != 409:
                raise
            secret = kube.get(p)
    if secret is not None:
        ring = sealing.KeyRing.from_pem(base64.b64decode(secret["data"][sealing.SECRET_DATA_KEY]))
    kube.apply_if_changed(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": settings.sealing_public_configmap,
                "namespace": settings.namespace,
                "labels": {"app.kubernetes.io/part-of": "byollm"},
            },
            "data": {"publicKey": ring.public_pem.decode(), "keyId": ring.key_ids[0]},
        }
    )
    return ring


async def _resync_loop(rec: Reconciler, period: float) -> None:
    """Periodically reconcile every LLMConfig: repairs missed events, re-checks credentials."""
    while True:
        await asyncio.sleep(period)
        try:
            items = await asyncio.to_thread(rec.kube.list, f"/apis/{GROUP}/{VERSION}/{PLURAL}")
        except Exception as e:
            log.warning("resync list failed: %s", type(e).__name__)
            continue
        started = asyncio.get_running_loop().time()
        for item in items:
            meta = item["metadata"]
            await _reconcile_async(rec, meta["namespace"], meta["name"])
        took = asyncio.get_running_loop().time() - started
        log.info("resync pass: %d LLMConfigs in %.1fs", len(items), took)


_RETRIES = Retries()


async def _reconcile_async(rec: Reconciler, namespace: str, name: str) -> None:
    """Reconcile in a worker thread; a failure is retried with backoff (``retry``)."""
    key = (namespace, name)
    try:
        await asyncio.to_thread(rec.reconcile, namespace, name)
    except Exception as e:
        if isinstance(e, WriteFenced):  # Lease not renewed lately: tried again, as below
            log.info("reconcile %s/%s not written: Lease not surely held", namespace, name)
        elif isinstance(e, KubeError):
            log.warning("reconcile %s/%s failed: %s", namespace, name, e)
        elif isinstance(e, urllib3.exceptions.HTTPError):  # refused, reset, timed out
            log.warning("reconcile %s/%s failed: API unreachable: %s", namespace, name, type(e))
        else:
            log.exception("reconcile %s/%s failed", namespace, name)
        delay = _RETRIES.failed(key, lambda: _reconcile_async(rec, namespace, name))
        log.info("reconcile %s/%s: next try in %.1fs", namespace, name, delay)
        return
    _RETRIES.succeeded(key)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    cfg = Settings()
    settings.posting.level = logging.WARNING  # no kopf chatter as Events; ours use kopf.event
    settings.posting.reporting_component = REPORTING_COMPONENT  # not "kopf"
    settings.posting.reporting_instance = REPORTING_INSTANCE
    settings.posting.event_name_prefix = f"{REPORTING_COMPONENT}-"
    settings.scanning.disabled = True  # no CRD watching: needs no cluster-wide CRD access
    settings.watching.server_timeout = 300
    # Secrets: only tenant key Secrets (byollm.io/llm-key=true) and our own children
    # (=operator) ever reach this process; the API server filters the rest.
    settings.watching.label_selectors["v1", "secrets"] = contract.LLM_KEY_LABEL
    settings.networking.request_timeout = 60
    # kopf's own retries of a failed API call (watch, list, Event): short and capped, so
    # watches resume within ~2 s of the API server coming back; once they run out kopf
    # re-lists at once (and again), so none of them is ever left behind for long.
    settings.networking.error_backoffs = [0.5, 1, 2] + [2] * 30
    # No cap on per-object workers: kopf keeps an idle worker 5 s, so a cap of 8 admitted
    # only ~1.6 new objects/s per kind (bench: 100 LLMConfigs took 70 s to reconcile).
    # Real concurrency is bounded by the reconcile thread pool.
    settings.queueing.worker_limit = None
    with contextlib.suppress(kubernetes.config.ConfigException):
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    if not kubernetes.client.Configuration.get_default_copy().api_key:
        await asyncio.to_thread(kubernetes.config.load_kube_config)
    api = kubernetes.client.ApiClient()
    api.user_agent = f"{REPORTING_COMPONENT}/{REPORTING_INSTANCE}/{os.getpid()}"  # audit: who
    kube = Kube(api, builders.FIELD_MANAGER)
    kube.write_fence = leadership.check
    ring = await asyncio.to_thread(_load_sealing, kube, cfg)
    rec = Reconciler(
        kube=kube,
        settings=cfg,
        post_event=_event_poster(kube),
        unseal=ring.unseal if ring is not None else None,
        probe=make_probe(cfg) if cfg.credentials_probe_enabled else None,
    )
    memo.reconciler = rec
    memo.resync = asyncio.create_task(_resync_loop(rec, cfg.resync_period))
    log.info("byollm operator started (resync %.0fs)", cfg.resync_period)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await _RETRIES.close()
    task = getattr(memo, "resync", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@kopf.index(GROUP, VERSION, PLURAL)
def llmconfigs_by_secret(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], tuple[str, str]] | None:
    """(namespace, Secret name) -> the LLMConfigs whose secretKeyRef names it."""
    ref = ((spec.get("provider") or {}).get("apiKey") or {}).get("secretKeyRef") or {}
    if not ref.get("name") or namespace is None:
        return None
    return {(namespace, ref["name"]): (namespace, name)}


def _echo(rec: Reconciler, body: kopf.Body) -> bool:
    """The event only carries back our own last write (its resourceVersion): skip it. A
    change by anyone else, or a later one, comes with another resourceVersion."""
    meta = body.get("metadata", {})
    try:
        p = path(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
    except KeyError:
        return False
    return rec.kube.own_write(p, meta.get("resourceVersion"))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def llmconfig_event(
    type: str, namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    if type == "DELETED" or namespace is None:
        return
    rec = _reconciler(memo)
    if _echo(rec, body):  # our own status patch coming back
        return
    await _reconcile_async(rec, namespace, name)


@kopf.on.event("v1", "secrets", labels={contract.LLM_KEY_LABEL: "true"})
async def key_secret_event(
    type: str, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A tenant's key Secret changed (only opted-in Secrets are ever read): reconcile the
    LLMConfigs that name it, so a rotated key rolls their routers."""
    index: kopf.Index[tuple[str, str], tuple[str, str]] = kwargs["llmconfigs_by_secret"]
    if not type or namespace is None:
        return  # initial listing: the LLMConfigs' own listing reconciles everything
    rec = _reconciler(memo)
    # Copy first: the index is live and changes while we await (LLMConfigs come and go).
    for ns, llmc in list(index.get((namespace, name), [])):
        await _reconcile_async(rec, ns, llmc)


@kopf.on.event("v1", "secrets", labels=CHILD_LABELS)
@kopf.on.event("v1", "services", labels=CHILD_LABELS)
@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILD_LABELS)
async def child_event(
    type: str,
    namespace: str | None,
    labels: kopf.Labels,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A child changed: put back edits and deletions, follow the Deployment's rollout."""
    parent = labels.get(builders.LABEL_CONFIG)
    if not type or not parent or namespace is None:
        return
    rec = _reconciler(memo)
    if type != "DELETED" and _echo(rec, body):  # our own apply coming back
        return
    await _reconcile_async(rec, namespace, parent)
