"""Tenants sharded across operator replicas: one coordination.k8s.io Lease per shard.

A namespace belongs to shard ``crc32(namespace) % shards`` (stable across processes and
Python versions, unlike ``hash()``), so a tenant's objects always land on one shard.
Every replica keeps a member Lease and counts the live members; it holds at most its
fair share (``ceil(shards / members)``) of shard Leases, takes free or expired ones up
to that share, and hands back the surplus when a new member appears. A replica that dies
stops renewing: its shard Leases are taken over ``lease_duration`` seconds after their
last change, as in client-go's leader election (expiry is judged by the local clock since
the Lease was last seen to change, so clock skew between nodes does not matter).

Write fence: a replica reconciles a shard only while its last successful renewal is
younger than ``renew_deadline`` (< ``lease_duration``), so it stops writing before any
other replica may take the shard over.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from byollm.kube import Kube, KubeError
from byollm_operator import controller

log = logging.getLogger("byollm.operator")

LABEL = "byollm.io/lease"
"""On every Lease of the sharding: ``shard`` or ``member`` (one LIST reads them all)."""
SHARD, MEMBER = "shard", "member"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


def shard_of(namespace: str, shards: int) -> int:
    """The shard of a namespace: CRC-32 of its name modulo the shard count."""
    return zlib.crc32(namespace.encode()) % max(1, shards)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ShardManager:
    """Acquires, renews and releases shard Leases in a thread; ``owns`` is the fence."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        prefix: str,
        shards: int,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.prefix = prefix
        self.shards = shards
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_acquired: Callable[[int], None] | None = None
        self._renewed: dict[int, float] = {}  # held shard -> monotonic time of last renewal
        self._seen: dict[str, tuple[str, float]] = {}  # lease -> (resourceVersion, since)
        self._member: dict[str, Any] | None = None  # our member Lease as last written
        self._wake = retry_period  # seconds to the next round (sooner when a Lease expires)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- queries (any thread) -------------------------------------------------------------

    def shard_of(self, namespace: str) -> int:
        return shard_of(namespace, self.shards)

    def owns(self, namespace: str) -> bool:
        """True while this replica holds the namespace's shard and renewed it recently
        enough that nobody else can have taken it over."""
        shard = self.shard_of(namespace)
        with self._lock:
            at = self._renewed.get(shard)
        return at is not None and time.monotonic() - at < self.renew_deadline

    def is_open(self) -> bool:
        """The write fence (``leadership.Gate``): a write made while reconciling a
        namespace goes out only while that namespace's shard is surely held; other writes
        (start-up, Leases) are not fenced."""
        ns = getattr(controller.CURRENT, "namespace", None)
        return ns is None or self.owns(ns)

    def held(self) -> list[int]:
        with self._lock:
            return sorted(self._renewed)

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> ShardManager:
        self._thread = threading.Thread(target=self._run, daemon=True, name="shards")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and hand every held shard back (clears the holder, so another
        replica takes it at its next retry instead of waiting for expiry)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.retry_period + 5)
        for shard in self.held():
            self._release(shard)
        self._write_member(release=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # the API server may be briefly away: try again
                log.warning("shard leases: %s", e)
            self._stop.wait(self._wake)

    def tick(self) -> None:
        """One round: renew the member Lease, count members, renew/take/release shards."""
        base = LEASES.format(ns=self.namespace)
        self._write_member()
        every = list(self.kube.list_pages(base, label_selector=LABEL))
        self._wake = self.retry_period
        # Observe every Lease each round: expiry counts from when a Lease was last seen
        # to change, so one first looked at late would seem alive a full duration longer.
        alive = {x["metadata"]["name"]: self._alive(x) for x in every}
        role = {
            x["metadata"]["name"]: (x["metadata"].get("labels") or {}).get(LABEL) for x in every
        }
        members = [n for n, r in role.items() if r == MEMBER and alive[n]]
        fair = math.ceil(self.shards / max(1, len(members)))
        leases = {x["metadata"]["name"]: x for x in every if role[x["metadata"]["name"]] == SHARD}
        mine = 0
        for shard in range(self.shards):
            lease = leases.get(self._name(shard))
            holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
            if lease is not None and holder == self.identity and self._renew(shard, lease):
                mine += 1
        for shard in range(self.shards):
            if mine >= fair:
                break
            lease = leases.get(self._name(shard))
            holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
            if holder == self.identity:
                continue
            free = lease is None or not holder or not alive[self._name(shard)]
            if free and self._take(shard, lease):
                mine += 1
        if mine > fair:  # a member joined: hand back the surplus, highest shard first
            for shard in sorted(self.held(), reverse=True)[: mine - fair]:
                self._release(shard)

    # --- lease helpers --------------------------------------------------------------------

    def _name(self, shard: int) -> str:
        return f"{self.prefix}-shard-{shard}"

    def _alive(self, lease: dict[str, Any]) -> bool:
        """Changed within its lease duration (as observed here), and held by someone."""
        meta, spec = lease["metadata"], lease.get("spec") or {}
        if not spec.get("holderIdentity"):
            return False
        if spec.get("holderIdentity") == self.identity:
            return True
        rv, now = meta.get("resourceVersion", ""), time.monotonic()
        seen = self._seen.get(meta["name"])
        if seen is None or seen[0] != rv:
            self._seen[meta["name"]] = (rv, now)
            return True
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        left = duration - (now - seen[1])
        if left > 0:  # look again right when it expires, not up to a period later
            self._wake = max(0.05, min(self._wake, left + 0.05))
        return left > 0

    def _body(self, name: str, role: str, holder: str | None, acquired: str) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {LABEL: role}},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": acquired,
                "renewTime": _now(),
            },
        }

    def _put(self, lease: dict[str, Any] | None, body: dict[str, Any]) -> bool:
        return self._write(lease, body) is not None

    def _write(self, lease: dict[str, Any] | None, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create, or replace with the resourceVersion we read (optimistic: a 409 means
        another replica wrote first and we keep our hands off)."""
        base = LEASES.format(ns=self.namespace)
        try:
            if lease is None:
                return self.kube.request("POST", base, body=body)
            body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
            return self.kube.request("PUT", f"{base}/{body['metadata']['name']}", body=body)
        except KubeError as e:
            if e.status in (409, 404):
                return None
            raise

    def _renew(self, shard: int, lease: dict[str, Any]) -> bool:
        spec = lease.get("spec") or {}
        body = self._body(
            self._name(shard), SHARD, self.identity, spec.get("acquireTime") or _now()
        )
        body["spec"]["leaseTransitions"] = spec.get("leaseTransitions", 0)
        ok = self._put(lease, body)
        with self._lock:
            if ok:
                self._renewed[shard] = time.monotonic()
            elif self._renewed.pop(shard, None) is not None:
                log.warning("shard %d: lost its Lease", shard)
        return ok

    def _take(self, shard: int, lease: dict[str, Any] | None) -> bool:
        body = self._body(self._name(shard), SHARD, self.identity, _now())
        prev = ((lease or {}).get("spec") or {}).get("leaseTransitions", 0)
        body["spec"]["leaseTransitions"] = prev + (1 if lease is not None else 0)
        if not self._put(lease, body):
            return False
        with self._lock:
            self._renewed[shard] = time.monotonic()
        log.info("shard %d/%d acquired by %s", shard, self.shards, self.identity)
        if self.on_acquired is not None:
            self.on_acquired(shard)
        return True

    def _release(self, shard: int) -> None:
        with self._lock:
            self._renewed.pop(shard, None)  # fence first: no write after this line
        p = f"{LEASES.format(ns=self.namespace)}/{self._name(shard)}"
        try:
            lease = self.kube.get(p)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                body = self._body(self._name(shard), SHARD, None, _now())
                body["spec"]["leaseTransitions"] = lease["spec"].get("leaseTransitions", 0)
                self._put(lease, body)
                log.info("shard %d released by %s", shard, self.identity)
        except KubeError as e:
            log.warning("releasing shard %d: %s", shard, e)

    def _write_member(self, release: bool = False) -> None:
        """Renew our member Lease: one PUT (a GET first only after a conflict)."""
        name = f"{self.prefix}-member-{self.identity}"[:253]
        lease = self._member
        if lease is None:
            lease = self.kube.get(f"{LEASES.format(ns=self.namespace)}/{name}")
        if lease is None and release:
            return
        holder = None if release else self.identity
        self._member = self._write(lease, self._body(name, MEMBER, holder, _now()))


def shards_from_memo(memo: Any) -> ShardManager | None:
    """The ShardManager main() put on kopf's memo (None: one replica does everything)."""
    mgr = getattr(memo, "shards", None)
    return mgr if isinstance(mgr, ShardManager) else None
