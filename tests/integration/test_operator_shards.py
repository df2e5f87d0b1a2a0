"""Tenants sharded across two operator replicas (BYOLLM_SHARDS=2): each LLMConfig is
reconciled by exactly one replica, the one holding its namespace's shard Lease, and a
killed replica's shard is taken over within the lease time."""

from __future__ import annotations

import contextlib
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import OPERATOR_NS, OperatorProcess, create_llmc, wait_for, wait_ready

from byollm.kube import Kube, KubeError
from byollm_operator.shards import shard_of

pytestmark = pytest.mark.cluster

SHARDS = 2
LEASE = "byollm-shardtest"
LEASE_DURATION = 4  # operator_helpers: BYOLLM_LEASE_DURATION=4, BYOLLM_LEASE_RETRY_PERIOD=1
RETRY_PERIOD = 1


def _namespaces(per_shard: int) -> list[str]:
    """Fresh namespace names, ``per_shard`` in each shard."""
    got: dict[int, list[str]] = {i: [] for i in range(SHARDS)}
    while any(len(v) < per_shard for v in got.values()):
        ns = f"t-{secrets.token_hex(4)}"
        if len(got[shard_of(ns, SHARDS)]) < per_shard:
            got[shard_of(ns, SHARDS)].append(ns)
    return [ns for v in got.values() for ns in v]


@pytest.fixture
def shard_namespaces(kube: Kube) -> Iterator[list[str]]:
    names = _namespaces(2)
    for ns in names:
        kube.request(
            "POST",
            "/api/v1/namespaces",
            body={
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "labels": {
                        "byollm.io/test": "true",
                        "pod-security.kubernetes.io/enforce": "restricted",
                    },
                },
            },
        )
    try:
        yield names
    finally:
        for ns in names:
            with contextlib.suppress(KubeError):
                kube.request("DELETE", f"/api/v1/namespaces/{ns}")


def _holders(kube: Kube) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(SHARDS):
        lease = kube.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NS}/leases/{LEASE}-shard-{i}"
        )
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
        if holder:
            out[i] = holder
    return out


def _created_by(kube: Kube, ns: str, name: str) -> list[str]:
    """reportingInstance of every "Created" Event of the LLMConfig (one per reconciler
    that made its router)."""
    events = kube.list(f"/api/v1/namespaces/{ns}/events")
    return [
        e.get("reportingInstance") or (e.get("source") or {}).get("host", "")
        for e in events
        if e.get("reason") == "Created" and e["involvedObject"].get("name") == name
    ]


def test_two_sharded_replicas(
    kube: Kube,
    running_operator: OperatorProcess,
    control_plane: Any,
    shard_namespaces: list[str],
) -> None:
    running_operator.stop()  # the single-leader operator must not reconcile these
    log_dir = Path(control_plane.log_dir)
    kubeconfig = Path(control_plane.operator_kubeconfig)
    replicas = {
        host: OperatorProcess(
            kubeconfig,
            log_dir,
            extra_env={"BYOLLM_SHARDS": str(SHARDS), "BYOLLM_LEASE_NAME": LEASE, "HOSTNAME": host},
        )
        for host in ("replica-a", "replica-b")
    }
    try:
        for op in replicas.values():
            op.start()
        # Each replica ends up with one shard (the fair share of 2 shards over 2 members).

        def split() -> dict[int, str] | None:
            h = _holders(kube)
            return h if len(set(h.values())) == SHARDS else None

        holders: dict[int, str] = wait_for("both shards held by different replicas", split, 30)
        owner = {i: h.rsplit("-", 1)[0] for i, h in holders.items()}
        assert set(owner.values()) == set(replicas)

        for ns in shard_namespaces:
            create_llmc(kube, ns, "sh", {"mode": "Managed"})
        for ns in shard_namespaces:
            wait_ready(kube, ns, "sh")
        for ns in shard_namespaces:
            by = _created_by(kube, ns, "sh")
            assert by == [owner[shard_of(ns, SHARDS)]], (ns, by, owner)

        # Kill the holder of shard 0 without a chance to release: the other replica takes
        # the shard once its Lease has gone unrenewed for the lease duration.
        victim = owner[0]
        survivor = next(h for h in replicas if h != victim)
        replicas[victim].stop(sig=signal.SIGKILL)
        t0 = time.monotonic()

        def survivor_holds_all() -> bool:
            h = _holders(kube)
            return len(h) == SHARDS and all(x.startswith(survivor + "-") for x in h.values())

        wait_for("the survivor to hold both shards", survivor_holds_all, LEASE_DURATION * 4, 0.1)
        took = time.monotonic() - t0
        print(f"shard takeover after {took:.1f}s (lease {LEASE_DURATION}s)")
        # The Lease expires LEASE_DURATION after the survivor last saw it renewed (at most
        # one retry period before the kill); the survivor looks again right at expiry.
        assert took <= LEASE_DURATION + RETRY_PERIOD + 2.0

        ns0 = next(ns for ns in shard_namespaces if shard_of(ns, SHARDS) == 0)
        create_llmc(kube, ns0, "after", {"mode": "Managed"})
        wait_ready(kube, ns0, "after")
        assert _created_by(kube, ns0, "after") == [survivor]
    finally:
        for op in replicas.values():
            op.stop()
    running_operator.start()
    running_operator.wait_leading()
