"""Watch-fed object cache (informer style) and a prioritized work queue.

The reconcile reads what it needs from :class:`Store` instead of GETting it: the watch
events kopf delivers are reduced to the few fields a reconcile reads (:func:`slim`), so
memory per object is bounded and small (no managedFields, no pod template, no
last-applied annotation). Children are remembered only by a fingerprint of everything but
their status; the full object is fetched only when a fingerprint does not match what the
operator last applied or verified (drift, or after a restart).

:class:`WorkQueue` is client-go's work queue with lanes: one entry per object however many
events arrive, an object is never reconciled by two workers at once, and a spec change
(new generation, rotated key, deleted child) jumps ahead of the status echoes and
Deployment progress events of a creation burst. Failed reconciles come back with
exponential backoff per object.
"""

from __future__ import annotations

import heapq
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

from byollm.kube import fingerprint, path
from byollm_operator import builders

Key = tuple[str, str]
"""(namespace, LLMConfig name)."""

LLMC_API = "byollm.io/v1alpha1"
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)


_API = {"LLMConfig": LLMC_API, **{kind: api for api, kind in CHILD_KINDS}}


class Lane(IntEnum):
    """Work queue lanes, most urgent first."""

    SPEC = 0
    """New object, new generation, rotated or (un)labelled key, deleted child."""
    CHILD = 1
    """A child changed by someone else (drift), Deployment rollout progress."""
    BACKGROUND = 2
    """Resync, retries, shard takeovers."""


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, ValueError, TypeError):
        return -1


def _meta(meta: dict[str, Any], *extra: str) -> dict[str, Any]:
    keep = ("name", "namespace", "uid", "resourceVersion", "generation", "deletionTimestamp")
    return {k: meta[k] for k in (*keep, *extra) if k in meta}


_CONFIG_SECRET_SUFFIX = builders.llm_secret_name("")
_DEPLOYMENT_STATUS = ("observedGeneration", "updatedReplicas", "availableReplicas", "replicas")


_SHORT = 64


def _compact(value: Any) -> Any:
    """A copy of decoded JSON whose keys and short strings are shared (``sys.intern``).

    Each decoded watch event or write answer carries its own copy of every key and of
    values that repeat across thousands of objects (condition types, reasons, statuses,
    labels, namespaces); the cache keeps one each. Measured at 1,000 tenants, decoded
    strings and dicts were the largest part of what the cache held."""
    if isinstance(value, dict):
        return {
            sys.intern(k): v if k == "data" else _compact(v)  # a Secret's values stay apart
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHORT:
        return sys.intern(value)
    return value


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of a watched object a reconcile reads, plus ``fp`` (see :func:`fingerprint`)
    for children. LLMConfig: spec and status. Secrets: labels and data (key Secrets are
    opted-in and small; the token Secret is ours; of the router config Secret only the key
    names). Deployment: replicas and the status fields RouterAvailable reads. Service and
    NetworkPolicy: identity only."""
    kind = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    if kind == "LLMConfig":
        return {
            "apiVersion": obj.get("apiVersion", LLMC_API),
            "kind": kind,
            "metadata": _meta(meta),
            "spec": obj.get("spec") or {},
            "status": obj.get("status") or {},
        }
    out: dict[str, Any] = {
        "apiVersion": obj.get("apiVersion"),
        "kind": kind,
        "metadata": _meta(meta, "labels"),
        "fp": fingerprint(obj),
    }
    if kind == "Secret":
        data = obj.get("data") or {}
        if meta.get("name", "").endswith(_CONFIG_SECRET_SUFFIX):
            data = dict.fromkeys(data, "")  # the router config: only its key names matter
        out["data"] = data
    elif kind == "Deployment":
        st = obj.get("status") or {}
        out["spec"] = {"replicas": (obj.get("spec") or {}).get("replicas", 1)}
        out["status"] = {k: st[k] for k in _DEPLOYMENT_STATUS if k in st}
        out["status"]["conditions"] = [
            {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
            for c in st.get("conditions") or []
            if c.get("type") in ("Available", "Progressing")
        ]
    return out


class Store:
    """Path -> slim object, fed by watch events and by the responses to our own writes.

    An update never replaces a newer object with an older one (resourceVersion order), so
    a late watch event cannot undo what a write response already put in. Also indexes
    key Secrets to the LLMConfigs that name them.
    """

    def __init__(self) -> None:
        self._objs: dict[str, dict[str, Any]] = {}
        self._llmcs: dict[Key, str] = {}  # key -> path
        self._by_secret: dict[Key, set[str]] = {}  # (ns, key Secret) -> LLMConfig names
        self._ref: dict[Key, str] = {}  # LLMConfig -> key Secret name
        self._lock = threading.Lock()
        self.synced: set[str] = set()
        """Kinds whose initial listing is complete: an object of such a kind that is not
        cached does not exist (or its event is on the way), so it needs no GET."""

    def __len__(self) -> int:
        return len(self._objs)

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Store a watched or written object; returns the slim copy (None if older than
        the cached one, or not an object)."""
        meta = obj.get("metadata") or {}
        try:
            p = path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        except KeyError:
            return None
        s: dict[str, Any] = _compact(slim(obj))
        s["seen"] = time.monotonic()
        p = sys.intern(p)  # one copy of each path, shared with the Kube layer's maps
        with self._lock:
            old = self._objs.get(p)
            if old is not None and _rv(old) > _rv(s) >= 0:
                return None
            self._objs[p] = s
            if s["kind"] == "LLMConfig":
                self._index(meta["namespace"], meta["name"], s, p)
        return s

    def delete(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        try:
            p = path(
                obj.get("apiVersion") or _API[obj["kind"]],
                obj["kind"],
                meta["namespace"],
                meta["name"],
            )
        except KeyError:
            return
        with self._lock:
            self._objs.pop(p, None)
            if obj.get("kind") == "LLMConfig":
                key = (meta["namespace"], meta["name"])
                self._llmcs.pop(key, None)
                self._unindex(key)

    def _index(self, ns: str, name: str, s: dict[str, Any], p: str) -> None:
        key = (ns, name)
        self._llmcs[key] = p
        ref = (((s["spec"].get("provider") or {}).get("apiKey") or {}).get("secretKeyRef")) or {}
        secret = ref.get("name")
        if self._ref.get(key) == secret:
            return
        self._unindex(key)
        if secret:
            self._ref[key] = secret
            self._by_secret.setdefault((ns, secret), set()).add(name)

    def _unindex(self, key: Key) -> None:
        old = self._ref.pop(key, None)
        if old is not None:
            names = self._by_secret.get((key[0], old))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._by_secret[(key[0], old)]

    def get(self, p: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objs.get(p)

    def touch(self, p: str) -> None:
        """A re-listing showed the object unchanged: it still exists."""
        with self._lock:
            got = self._objs.get(p)
            if got is not None:
                got["seen"] = time.monotonic()

    def unseen_since(self, kind: str, since: float) -> list[dict[str, Any]]:
        """Cached objects of ``kind`` no event or listing mentioned since ``since``."""
        with self._lock:
            return [
                o for o in self._objs.values() if o["kind"] == kind and o.get("seen", 0) < since
            ]

    def users_of_secret(self, namespace: str, name: str) -> list[str]:
        """LLMConfigs (names, same namespace) whose secretKeyRef names this Secret."""
        with self._lock:
            return sorted(self._by_secret.get((namespace, name), ()))

    def llmconfig_keys(self) -> list[Key]:
        with self._lock:
            return list(self._llmcs)

    def inputs(self, key: Key) -> tuple[Any, ...]:
        """The resourceVersions a reconcile of ``key`` reads: equal inputs, equal outcome
        (the resync compares these instead of reconciling everything again)."""
        ns, name = key
        paths = [path(LLMC_API, "LLMConfig", ns, name)]
        with self._lock:
            secret = self._ref.get(key)
            if secret:
                paths.append(path("v1", "Secret", ns, secret))
            paths += [
                path("v1", "Secret", ns, builders.llm_secret_name(name)),
                path("v1", "Secret", ns, builders.token_secret_name(name)),
                path("apps/v1", "Deployment", ns, builders.router_name(name)),
                path("v1", "Service", ns, builders.router_name(name)),
                path("networking.k8s.io/v1", "NetworkPolicy", ns, builders.router_name(name)),
            ]
            return tuple(
                (self._objs.get(p) or {}).get("metadata", {}).get("resourceVersion") for p in paths
            )


class WorkQueue:
    """Deduplicating work queue with priority lanes, per-key exclusivity and backoff.

    ``add`` of a queued key keeps one entry (moved to the more urgent lane); ``add`` of a
    key a worker is processing marks it to run once more when that worker calls ``done``.
    ``get`` hands out the oldest key of the most urgent non-empty lane.
    """

    def __init__(self, backoff_base: float = 0.5, backoff_max: float = 10.0) -> None:
        self._lanes: list[deque[Key]] = [deque() for _ in Lane]
        self._queued: dict[Key, Lane] = {}
        self._processing: set[Key] = set()
        self._dirty: dict[Key, Lane] = {}
        self._delayed: list[tuple[float, int, Key, Lane]] = []
        self._seq = 0
        self._failures: dict[Key, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    def __len__(self) -> int:
        with self._cond:
            return len(self._queued)

    def add(self, key: Key, lane: Lane = Lane.CHILD) -> None:
        with self._cond:
            self._add(key, lane)

    def _add(self, key: Key, lane: Lane) -> None:
        if key in self._processing:
            self._dirty[key] = min(lane, self._dirty.get(key, lane))
            return
        queued = self._queued.get(key)
        if queued is not None and queued <= lane:
            return
        self._queued[key] = lane  # an entry left in a slower lane is skipped as stale
        self._lanes[lane].append(key)
        self._cond.notify()

    def add_after(self, key: Key, delay: float, lane: Lane = Lane.BACKGROUND) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key, lane))
            self._cond.notify()

    def retry(self, key: Key) -> float:
        """Queue a failed key again after its backoff (doubling per failure in a row)."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = float(min(self.backoff_max, self.backoff_base * (2.0**n)))
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        """The key succeeded: its next failure starts the backoff over."""
        with self._cond:
            self._failures.pop(key, None)

    def get(self, timeout: float | None = None, most: Lane = Lane.BACKGROUND) -> Key | None:
        """The next key to process (then call ``done``), or None on timeout/close.
        ``most``: the least urgent lane this caller takes (a worker kept for spec changes
        passes ``Lane.SPEC``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, k, lane = heapq.heappop(self._delayed)
                    self._add(k, lane)
                for i, q in enumerate(self._lanes[: most + 1]):
                    while q:
                        k = q.popleft()
                        if self._queued.get(k) == i:
                            del self._queued[k]
                            self._processing.add(k)
                            return k
                if most < Lane.BACKGROUND and any(self._lanes[most + 1 :]):
                    self._cond.notify()  # work we do not take: wake a worker that does
                wait = None if deadline is None else deadline - now
                if self._delayed:
                    until = self._delayed[0][0] - now
                    wait = until if wait is None else min(wait, until)
                if wait is not None and wait <= 0:
                    if deadline is not None and now >= deadline:
                        return None
                    continue
                self._cond.wait(wait)
            return None

    def processing(self, key: Key) -> bool:
        """A worker has ``key`` now."""
        with self._cond:
            return key in self._processing

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            lane = self._dirty.pop(key, None)
            if lane is not None:
                self._add(key, lane)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def lane_sizes(self) -> Iterator[int]:
        with self._cond:
            return iter(
                [sum(1 for k in q if self._queued.get(k) == i) for i, q in enumerate(self._lanes)]
            )
