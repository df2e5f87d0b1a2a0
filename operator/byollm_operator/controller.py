"""The control loop around :class:`~byollm_operator.reconcile.Reconciler`: watch events
feed the :class:`~byollm_operator.cache.Store` and the :class:`~byollm_operator.cache.WorkQueue`;
a fixed number of worker threads reconcile what the queue hands out.

Event → lane: a new LLMConfig, a new generation, a key Secret change and a deleted child
go to the spec lane; a child edited by someone else to the spec lane too (drift is put
back first); a child's status-only change (Deployment rollout progress) to the child
lane; the echo of our own write (its resourceVersion is the one our write left) to no
lane at all.

The resync is not a full pass of reconciles: it compares, in memory, the
resourceVersions each LLMConfig's last successful reconcile read with the cached ones,
and queues only those that differ, never succeeded, or whose credentials check is due
(see :meth:`Store.inputs`). With every object cached that is microseconds per object.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import urllib3

from byollm.kube import KubeError, WriteFenced, path
from byollm_operator import builders
from byollm_operator.cache import CHILD_KINDS, Key, Lane, Store, WorkQueue
from byollm_operator.reconcile import Reconciler

log = logging.getLogger("byollm.operator")

CURRENT = threading.local()
"""``namespace``: the namespace this worker thread is reconciling (the shard fence's key)."""


def _everything(namespace: str) -> bool:
    return True


class Controller:
    """Store + queue + workers for one operator process."""

    def __init__(
        self,
        rec: Reconciler,
        workers: int,
        owns: Callable[[str], bool] = _everything,
    ) -> None:
        self.rec = rec
        self.store = rec.store if rec.store is not None else Store()
        rec.store = self.store
        self.queue = WorkQueue()
        self.owns = owns
        self.workers = workers
        self._done: dict[Key, tuple[Any, ...]] = {}  # inputs of the last successful reconcile
        self._threads: list[threading.Thread] = []
        # kind -> [monotonic start, last event] of a (re)listing in progress (kopf passes
        # type None for the objects of a listing: at start and after a broken watch)
        self._listing: dict[str, list[float]] = {}
        self._listing_guard = threading.Lock()
        self._stopped = threading.Event()
        self.listing_quiet = 5.0
        self._started = time.monotonic()
        # spec-lane figures since the last report: event delivery lag (API server write to
        # our handler, from managedFields' one-second timestamps) and queue wait
        self._spec_lag: list[float] = []
        self._spec_wait: list[float] = []
        self._queued_at: dict[Key, float] = {}

    # --- workers ------------------------------------------------------------------------

    def start(self) -> None:
        # One worker (of two or more) takes spec changes only: a tenant's change never waits
        # for a worker to finish someone else's rollout-progress reconcile.
        for i in range(self.workers):
            most = Lane.SPEC if i == 0 and self.workers > 1 else Lane.BACKGROUND
            t = threading.Thread(
                target=self._work, args=(most,), daemon=True, name=f"reconcile-{i}"
            )
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._sweeper, daemon=True, name="relist-sweep")
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self.queue.close()
        for t in self._threads:
            t.join(timeout)

    def _work(self, most: Lane) -> None:
        while True:
            key = self.queue.get(most=most)
            if key is None:
                return
            try:
                self._process(key)
            finally:
                self.queue.done(key)

    def _process(self, key: Key) -> None:
        ns, name = key
        at = self._queued_at.pop(key, None)
        if at is not None and len(self._spec_wait) < 10_000:
            self._spec_wait.append(time.monotonic() - at)
        if not self.owns(ns):
            return  # another replica's shard (lost since the key was queued)
        inputs = self.store.inputs(key)
        CURRENT.namespace = ns
        try:
            self.rec.reconcile(ns, name)
        except WriteFenced:  # the Lease was not renewed lately: tried again after backoff
            delay = self.queue.retry(key)
            log.info(
                "reconcile %s/%s not written: Lease not surely held (retry in %.1fs)",
                ns,
                name,
                delay,
            )
            return
        except (KubeError, urllib3.exceptions.HTTPError) as e:  # refused, reset, timed out
            delay = self.queue.retry(key)
            log.warning("reconcile %s/%s failed (retry in %.1fs): %s", ns, name, delay, e)
            return
        except Exception:
            delay = self.queue.retry(key)
            log.exception("reconcile %s/%s failed (retry in %.1fs)", ns, name, delay)
            return
        finally:
            CURRENT.namespace = None
        self.queue.forget(key)
        after = self.store.inputs(key)
        # Our own writes moved some resourceVersions: those are the state we produced.
        self._done[key] = after if after != inputs else inputs

    # --- events -------------------------------------------------------------------------

    def _listed(self, type_: str | None, body: dict[str, Any]) -> None:
        """Note a listing event (type None) of the body's kind."""
        if type_ is not None:
            return
        now = time.monotonic()
        with self._listing_guard:
            span = self._listing.setdefault(body.get("kind", ""), [now, now])
            span[1] = now

    def _sweeper(self) -> None:
        while not self._stopped.wait(1.0):
            try:
                self.sweep()
            except Exception:  # never let the sweeper die
                log.exception("relist sweep failed")

    def sweep(self, now: float | None = None) -> int:
        """After a (re)listing went quiet: objects of that kind it did not mention were
        deleted while the watch was down (kopf sends no DELETED for them). Drop them and
        queue their LLMConfigs. A wrong drop only costs a GET: the reconcile finds the
        object missing from the cache and reads it."""
        now = time.monotonic() if now is None else now
        with self._listing_guard:
            done = [k for k, (_, last) in self._listing.items() if now - last >= self.listing_quiet]
            spans = {k: self._listing.pop(k)[0] for k in done}
            self.store.synced.update(done)
            if now - self._started >= 3 * self.listing_quiet:  # kinds with nothing to list
                kinds = {"LLMConfig", *(kind for _, kind in CHILD_KINDS)}
                self.store.synced.update(kinds - set(self._listing))
        dropped = 0
        for kind, since in spans.items():
            for obj in self.store.unseen_since(kind, since):
                dropped += 1
                self.store.delete(obj)
                meta = obj["metadata"]
                ns, name = meta["namespace"], meta["name"]
                if kind == "LLMConfig":
                    self._done.pop((ns, name), None)
                    continue
                parent = (meta.get("labels") or {}).get(builders.LABEL_CONFIG)
                if parent:
                    self._enqueue(ns, parent, Lane.SPEC)
                elif kind == "Secret":
                    for llmc in self.store.users_of_secret(ns, name):
                        self._enqueue(ns, llmc, Lane.SPEC)
        if dropped:
            log.info("relisting: %d cached objects were deleted meanwhile", dropped)
        return dropped

    def _enqueue(self, ns: str, name: str, lane: Lane) -> None:
        if self.owns(ns):
            self.queue.add((ns, name), lane)

    def _arrived(self, type_: str | None, body: dict[str, Any]) -> tuple[str, str] | None:
        """(namespace, name) of a watch event's object, a deleted one already dropped from
        the cache; None when the object lacks either (nothing to key it by)."""
        meta = body.get("metadata") or {}
        ns, name = meta.get("namespace"), meta.get("name")
        if not ns or not name:
            return None
        if type_ == "DELETED":
            self.store.delete(body)
        return ns, name

    def _take(
        self, type_: str | None, body: dict[str, Any], p: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
        """Put a watch event's object in the cache: (cached before, cached now), or None
        when the event holds nothing new (older than what the cache holds, or a re-listing
        of the same resourceVersion)."""
        self._listed(type_, body)
        old = self.store.get(p)
        new = self.store.put(body)
        if new is None:
            return None
        rv = body["metadata"].get("resourceVersion")
        if old is not None and old["metadata"].get("resourceVersion") == rv:
            return None
        return old, new

    def on_llmconfig(self, type_: str | None, body: dict[str, Any]) -> None:
        key = self._arrived(type_, body)
        if key is None:
            return
        ns, name = key
        if type_ == "DELETED":
            self._done.pop((ns, name), None)
            return
        meta = body["metadata"]
        p = path(body["apiVersion"], body["kind"], ns, name)
        taken = self._take(type_, body, p)
        if taken is None or self.rec.kube.own_write(p, meta.get("resourceVersion")):
            return  # nothing new, or the echo of our own status write
        old, new = taken
        spec_changed = (
            old is None
            or old["metadata"].get("generation") != new["metadata"].get("generation")
            or old.get("spec") != new.get("spec")
        )
        if spec_changed and old is not None:
            self._note_spec_event(ns, name, meta)
        self._enqueue(ns, name, Lane.SPEC if spec_changed else Lane.CHILD)

    def on_key_secret(self, type_: str | None, body: dict[str, Any]) -> None:
        key = self._arrived(type_, body)
        if key is None:
            return
        ns, name = key
        if type_ != "DELETED" and self._take(type_, body, path("v1", "Secret", ns, name)) is None:
            return
        for llmc in self.store.users_of_secret(ns, name):
            self._enqueue(ns, llmc, Lane.SPEC)

    def on_child(self, type_: str | None, body: dict[str, Any]) -> None:
        key = self._arrived(type_, body)
        if key is None:
            return
        ns, name = key
        meta = body["metadata"]
        parent = (meta.get("labels") or {}).get(builders.LABEL_CONFIG)
        if type_ == "DELETED":
            if parent:
                self._enqueue(ns, parent, Lane.SPEC)  # put it back
            return
        p = path(body["apiVersion"], body["kind"], ns, name)
        taken = self._take(type_, body, p)
        if taken is None or not parent:
            return
        if self.rec.kube.own_write(p, meta.get("resourceVersion")):
            return  # our own apply coming back
        old, new = taken
        drift = old is None or old.get("fp") != new.get("fp")
        # While the parent is being reconciled, a "new" child is most likely our own write
        # whose answer the worker has not recorded yet (the watch can be faster): it is
        # looked at again after that reconcile, in the child lane, not ahead of real
        # changes. In a creation burst that race re-queued most tenants in the spec lane.
        if drift and self.queue.processing((ns, parent)):
            drift = False
        self._enqueue(ns, parent, Lane.SPEC if drift else Lane.CHILD)

    def _note_spec_event(self, ns: str, name: str, meta: dict[str, Any]) -> None:
        """Record how late a spec change reached us and start timing its queue wait."""
        if not self.owns(ns):
            return
        self._queued_at.setdefault((ns, name), time.monotonic())
        times = [f.get("time", "") for f in meta.get("managedFields") or []]
        if times and len(self._spec_lag) < 10_000:
            with contextlib.suppress(ValueError):
                t = datetime.fromisoformat(max(times).replace("Z", "+00:00")).timestamp()
                self._spec_lag.append(max(0.0, time.time() - t))

    def spec_figures(self) -> str:
        """p50/max of the spec changes' delivery lag and queue wait since the last call."""
        lag, wait = sorted(self._spec_lag), sorted(self._spec_wait)
        self._spec_lag, self._spec_wait = [], []

        def f(v: list[float]) -> str:
            return f"{v[len(v) // 2]:.2f}/{v[-1]:.2f}s" if v else "-"

        spec, child, background = self.queue.lane_sizes()
        return (
            f"spec changes {len(lag)}: event lag p50/max {f(lag)}, queue wait {f(wait)}; "
            f"queued spec/child/background {spec}/{child}/{background}"
        )

    # --- resync -------------------------------------------------------------------------

    def resync_pass(self) -> tuple[int, int, float]:
        """Queue the LLMConfigs whose cached inputs differ from those of their last
        successful reconcile (or whose credentials check is due). Returns (objects seen,
        queued, seconds)."""
        t0 = time.monotonic()
        seen = queued = 0
        for key in self.store.llmconfig_keys():
            if not self.owns(key[0]):
                continue
            seen += 1
            if self._done.get(key) != self.store.inputs(key) or self.rec.probe_due(*key):
                self.queue.add(key, Lane.BACKGROUND)
                queued += 1
        return seen, queued, time.monotonic() - t0

    def requeue_namespaces(self, match: Callable[[str], bool]) -> int:
        """Queue every cached LLMConfig whose namespace matches (a shard taken over)."""
        n = 0
        for ns, name in self.store.llmconfig_keys():
            if match(ns):
                self._done.pop((ns, name), None)
                self.queue.add((ns, name), Lane.BACKGROUND)
                n += 1
        return n
