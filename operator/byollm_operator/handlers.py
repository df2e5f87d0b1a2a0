"""kopf handlers: each hands the raw watch event to the ``Controller`` (cache + work
queue, ``controller.py``); the controller's workers run ``Reconciler.reconcile``.

Only watch-event handlers are used (no on.create/update, no timers): they keep no state
on the objects, so there are no finalizers, no kopf annotations and no status writes of
kopf's own; garbage collection of the children is left to ownerReferences. Triggers:

* the LLMConfig's own events (including the initial listing: the "resume" after restart);
* events of an opted-in key Secret (label ``byollm.io/llm-key=true``) named by some
  LLMConfig's ``secretKeyRef`` (the cache's index, not a poll): rotating or deleting the key
  re-reconciles and rolls or flags the router;
* events of the children (label ``app.kubernetes.io/managed-by=byollm-operator``): edits
  and deletions are put back, Deployment progress updates RouterAvailable;
* a periodic resync (in memory: queues what changed since its last reconcile) and the
  credentials re-check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
from typing import Any

import kopf
import kubernetes

from byollm.api import GROUP, PLURAL, VERSION
from byollm.kube import Kube, KubeError, path
from byollm_operator import builders, leadership
from byollm_operator.cache import Store
from byollm_operator.controller import Controller, _everything
from byollm_operator.events import EventRecorder
from byollm_operator.reconcile import Reconciler, make_probe
from byollm_operator.settings import Settings
from byollm_operator.shards import shards_from_memo
from byollm_router import contract

log = logging.getLogger("byollm.operator")
CHILD_LABELS = {builders.LABEL_MANAGED_BY: builders.MANAGED_BY}
REPORTING_COMPONENT = builders.MANAGED_BY
"""Events' source.component and reportingController (the "From" of kubectl describe)."""
REPORTING_INSTANCE = (os.environ.get("HOSTNAME") or socket.gethostname())[:128]
"""Events' reportingInstance: the operator pod's name."""


def _reconciler(memo: Any) -> Reconciler:
    rec: Reconciler = memo.reconciler
    return rec


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


async def _resync_loop(ctl: Controller, period: float) -> None:
    """Every period, queue the LLMConfigs whose cached inputs changed since their last
    successful reconcile (see Controller.resync_pass): an in-memory comparison, not a
    reconcile of everything."""
    while True:
        await asyncio.sleep(period)
        seen, queued, took = await asyncio.to_thread(ctl.resync_pass)
        log.info(
            "resync pass: %d LLMConfigs in %.3fs (%d queued, period %.0fs); %s",
            seen,
            took,
            queued,
            period,
            ctl.spec_figures(),
        )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    cfg = Settings()
    settings.posting.level = logging.WARNING  # no kopf chatter as Events; ours: EventRecorder
    settings.posting.reporting_component = REPORTING_COMPONENT  # not "kopf"
    settings.posting.reporting_instance = REPORTING_INSTANCE
    settings.posting.event_name_prefix = f"{REPORTING_COMPONENT}-"
    settings.scanning.disabled = True  # no CRD watching: needs no cluster-wide CRD access
    settings.watching.server_timeout = 300
    # Secrets: only tenant key Secrets (byollm.io/llm-key=true) and our own children
    # (=operator) ever reach this process; the API server filters the rest.
    settings.watching.label_selectors["v1", "secrets"] = contract.LLM_KEY_LABEL
    # Children: the API server sends only ours (the handlers' label filters are local).
    managed = f"{builders.LABEL_MANAGED_BY}={builders.MANAGED_BY}"
    for resource in (("v1", "services"), ("apps", "v1", "deployments")):
        settings.watching.label_selectors[resource] = managed
    settings.watching.label_selectors["networking.k8s.io", "v1", "networkpolicies"] = managed
    settings.networking.request_timeout = 60
    # kopf's own retries of a failed API call (watch, list, Event): short and capped, so
    # watches resume within ~2 s of the API server coming back; once they run out kopf
    # re-lists at once (and again), so none of them is ever left behind for long.
    settings.networking.error_backoffs = [0.5, 1, 2] + [2] * 30
    # No cap on kopf's per-object workers: they only update the cache and the queue (no
    # I/O), so they finish at once; an idle one is dropped after a second, not kopf's 5 s
    # (each holds the last body it saw). Reconcile concurrency is the fixed worker pool.
    settings.queueing.worker_limit = None
    settings.queueing.idle_timeout = 1.0
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.batching.batch_window = 0.05
    with contextlib.suppress(kubernetes.config.ConfigException):
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    if not kubernetes.client.Configuration.get_default_copy().api_key:
        await asyncio.to_thread(kubernetes.config.load_kube_config)
    api = kubernetes.client.ApiClient()
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = cfg.reconcile_workers + 2
    api.user_agent = f"{REPORTING_COMPONENT}/{REPORTING_INSTANCE}/{os.getpid()}"  # audit: who
    kube = Kube(api, builders.FIELD_MANAGER)
    kube.write_fence = leadership.check
    ring = await asyncio.to_thread(_load_sealing, kube, cfg)
    events = EventRecorder(kube, REPORTING_COMPONENT, REPORTING_INSTANCE)
    events.start()
    memo.events = events
    rec = Reconciler(
        kube=kube,
        settings=cfg,
        post_event=events,
        unseal=ring.unseal if ring is not None else None,
        probe=make_probe(cfg) if cfg.credentials_probe_enabled else None,
        store=Store(),
    )
    shards = shards_from_memo(memo)
    ctl = Controller(rec, cfg.reconcile_workers, owns=shards.owns if shards else _everything)
    if shards is not None:
        shards.on_acquired = lambda shard: log.info(
            "shard %d: queued %d LLMConfigs",
            shard,
            ctl.requeue_namespaces(lambda ns: shards.shard_of(ns) == shard),
        )
    memo.reconciler = rec
    memo.controller = ctl
    ctl.start()
    memo.resync = asyncio.create_task(_resync_loop(ctl, cfg.resync_period))
    log.info(
        "byollm operator started (resync %.0fs, %d workers)",
        cfg.resync_period,
        cfg.reconcile_workers,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task = getattr(memo, "resync", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    ctl = getattr(memo, "controller", None)
    if ctl is not None:
        await asyncio.to_thread(ctl.stop)
    events = getattr(memo, "events", None)
    if events is not None:
        await asyncio.to_thread(events.stop)


class _NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf computes a deep-copied "essence" and a diff of every event for on.create/update
    handlers; this operator has none (only on.event), so that work is skipped: it was the
    largest share of kopf's CPU per event (profile at 10,000 LLMConfigs)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: Any) -> Any:
        return None


def _controller(memo: Any) -> Controller:
    ctl: Controller = memo.controller
    return ctl


def _raw(event: Any) -> dict[str, Any]:
    raw: dict[str, Any] = event["object"]
    return raw


@kopf.on.event(GROUP, VERSION, PLURAL)
async def llmconfig_event(type: str | None, event: Any, memo: kopf.Memo, **_: Any) -> None:
    _controller(memo).on_llmconfig(type, _raw(event))


@kopf.on.event("v1", "secrets", labels={contract.LLM_KEY_LABEL: "true"})
async def key_secret_event(type: str | None, event: Any, memo: kopf.Memo, **_: Any) -> None:
    """A tenant's key Secret changed (only opted-in Secrets are ever read): the LLMConfigs
    that name it are queued, so a rotated key rolls their routers."""
    _controller(memo).on_key_secret(type, _raw(event))


@kopf.on.event("v1", "secrets", labels=CHILD_LABELS)
@kopf.on.event("v1", "services", labels=CHILD_LABELS)
@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=CHILD_LABELS)
async def child_event(type: str | None, event: Any, memo: kopf.Memo, **_: Any) -> None:
    """A child changed: put back edits and deletions, follow the Deployment's rollout."""
    _controller(memo).on_child(type, _raw(event))
