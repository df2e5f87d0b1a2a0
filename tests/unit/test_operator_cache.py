"""The operator's cache, work queue and shard function (pure, no cluster)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, cast

from byollm.kube import fingerprint
from byollm_operator.cache import Lane, Store, WorkQueue, slim
from byollm_operator.controller import Controller
from byollm_operator.shards import shard_of


def _llmc(name: str, rv: str, gen: int = 1, secret: str = "k") -> dict[str, Any]:
    return {
        "apiVersion": "byollm.io/v1alpha1",
        "kind": "LLMConfig",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": rv,
            "generation": gen,
            "managedFields": [{"manager": "x" * 1000}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "y" * 5000},
        },
        "spec": {"mode": "BYO", "provider": {"apiKey": {"secretKeyRef": {"name": secret}}}},
        "status": {"observedGeneration": gen},
    }


def _deployment(rv: str, replicas: int = 1, ready: int = 0, rev: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "a-router",
            "namespace": "ns",
            "resourceVersion": rv,
            "generation": 1,
            "annotations": {"deployment.kubernetes.io/revision": rev},
            "labels": {"byollm.io/llmconfig": "a"},
        },
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": "r"}]}}},
        "status": {"readyReplicas": ready},
    }


def test_queue_spec_lane_jumps_ahead_and_keys_are_deduplicated() -> None:
    q = WorkQueue()
    for i in range(5):
        q.add(("ns", f"echo{i}"), Lane.CHILD)
    q.add(("ns", "echo0"), Lane.CHILD)  # already queued: one entry
    q.add(("ns", "changed"), Lane.SPEC)
    q.add(("ns", "echo3"), Lane.SPEC)  # promoted, not duplicated
    assert len(q) == 6
    got = [q.get(0) for _ in range(6)]
    assert got[:2] == [("ns", "changed"), ("ns", "echo3")]
    assert sorted(k[1] for k in got[2:] if k) == ["echo0", "echo1", "echo2", "echo4"]
    assert q.get(0.01) is None


def test_queue_never_hands_out_a_key_twice_at_once_and_reruns_it_after() -> None:
    q = WorkQueue()
    q.add(("ns", "a"))
    assert q.get(0) == ("ns", "a")
    q.add(("ns", "a"), Lane.SPEC)  # arrives while a worker has it
    assert q.get(0.01) is None
    q.done(("ns", "a"))
    assert q.get(0) == ("ns", "a")
    q.done(("ns", "a"))
    assert q.get(0.01) is None


def test_queue_retry_backs_off_per_key_and_forget_resets() -> None:
    q = WorkQueue(backoff_base=0.05, backoff_max=0.2)
    key = ("ns", "a")
    assert [q.retry(key) for _ in range(4)] == [0.05, 0.1, 0.2, 0.2]
    q.forget(key)
    assert q.retry(key) == 0.05
    t0 = time.monotonic()
    assert q.get(2) == key  # delayed entries arrive (one entry despite five retries)
    assert time.monotonic() - t0 >= 0.04
    q.done(key)


def test_queue_wakes_a_blocked_worker() -> None:
    q = WorkQueue()
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(q.get(5)))
    t.start()
    time.sleep(0.05)
    q.add(("ns", "a"))
    t.join(2)
    assert got == [("ns", "a")]


def test_queue_a_spec_only_worker_leaves_other_work_to_the_rest() -> None:
    """The worker kept for spec changes takes no rollout-progress work, and its wake-up for
    such work is passed on, so the general worker asleep beside it still gets it."""
    q = WorkQueue()
    spec_only: list[Any] = []
    general: list[Any] = []
    ts = [
        threading.Thread(target=lambda: spec_only.append(q.get(1.0, most=Lane.SPEC))),
        threading.Thread(target=lambda: general.append(q.get(5.0))),
    ]
    for t in ts:  # the spec-only worker waits first, so it is the one a notify wakes first
        t.start()
        time.sleep(0.05)
    q.add(("ns", "progress"), Lane.CHILD)
    ts[1].join(2)
    assert general == [("ns", "progress")]
    ts[0].join(2)
    assert spec_only == [None]  # it timed out rather than take child work

    q.add(("ns", "more-progress"), Lane.BACKGROUND)
    q.add(("ns", "changed"), Lane.SPEC)
    assert q.get(0, most=Lane.SPEC) == ("ns", "changed")
    assert q.get(0, most=Lane.SPEC) is None
    assert q.get(0) == ("ns", "more-progress")


def test_the_store_keeps_one_copy_of_repeated_strings_but_not_of_secret_values() -> None:
    """Two objects decoded apart share their keys and repeated short values in the cache;
    a Secret's data values are kept as they came (never put in the interpreter's table)."""
    store = Store()
    a = store.put(json.loads(json.dumps(_llmc("a", "5"))))
    b = store.put(json.loads(json.dumps(_llmc("b", "6"))))
    assert a is not None
    assert b is not None
    (key_a,) = [k for k in a["metadata"] if k == "namespace"]
    (key_b,) = [k for k in b["metadata"] if k == "namespace"]
    assert key_a is key_b
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert a == slim(_llmc("a", "5")) | {"seen": a["seen"]}  # same content, only shared

    value = "c2stc2VjcmV0LWRhdGEtbm90LWludGVybmVk"  # a literal: the interpreter interns it
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "k", "namespace": "ns", "resourceVersion": "1"},
        "data": {"apiKey": value},
    }
    kept = store.put(json.loads(json.dumps(secret)))
    assert kept is not None
    assert kept["data"]["apiKey"] == value
    assert kept["data"]["apiKey"] is not sys.intern(value)  # the decoded copy, not shared


def test_slim_keeps_what_a_reconcile_reads_and_drops_the_bulk() -> None:
    s = slim(_llmc("a", "5"))
    assert s["spec"]["mode"] == "BYO"
    assert s["status"] == {"observedGeneration": 1}
    assert "managedFields" not in s["metadata"]
    assert "annotations" not in s["metadata"]
    d = slim(_deployment("7", replicas=2, ready=1))
    assert d["spec"] == {"replicas": 2}
    assert d["status"] == {"conditions": []}  # readyReplicas is not read by the reconcile
    assert "template" not in str(d)


def test_the_router_config_secret_is_cached_without_its_values() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "a-llm", "namespace": "ns", "resourceVersion": "3"},
        "data": {"LLM_API_KEY": "c2stc2VjcmV0"},
    }
    assert slim(secret)["data"] == {"LLM_API_KEY": ""}


def test_fingerprint_ignores_status_and_controller_bookkeeping_but_not_edits() -> None:
    base = fingerprint(_deployment("7"))
    fresh = _deployment("6")  # as our apply created it: no annotation map at all yet
    del fresh["metadata"]["annotations"]
    assert fingerprint(fresh) == base
    assert fingerprint(_deployment("9", ready=1, rev="2")) == base  # rollout progress
    assert fingerprint(_deployment("9", replicas=3)) != base  # someone scaled it


def test_store_keeps_the_newer_object_and_indexes_key_secrets() -> None:
    st = Store()
    assert st.put(_llmc("a", "10")) is not None
    assert st.put(_llmc("a", "9")) is None  # a late watch event: the write response wins
    assert st.users_of_secret("ns", "k") == ["a"]
    st.put(_llmc("a", "11", gen=2, secret="k2"))
    assert st.users_of_secret("ns", "k") == []
    assert st.users_of_secret("ns", "k2") == ["a"]
    before = st.inputs(("ns", "a"))
    st.put(_deployment("12"))
    assert st.inputs(("ns", "a")) != before
    st.delete(_llmc("a", "13"))
    assert st.llmconfig_keys() == []
    assert st.users_of_secret("ns", "k2") == []


def test_shard_of_is_stable_and_spreads_namespaces() -> None:
    assert shard_of("tenant-acme", 4) == shard_of("tenant-acme", 4)
    assert shard_of("tenant-acme", 1) == 0
    counts = [0, 0, 0, 0]
    for i in range(4000):
        counts[shard_of(f"bench-{i}", 4)] += 1
    assert min(counts) > 800
    # CRC-32 of the name: the same in every process and Python version.
    assert shard_of("bench-0", 7) == 2530901313 % 7


class _Kube:
    def own_write(self, p: str, rv: str | None) -> bool:
        return rv == "own"


class _Rec:
    """The parts of a Reconciler the controller calls (no API server in unit tests)."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.kube = _Kube()
        self.reconciled: list[tuple[str, str]] = []

    def reconcile(self, ns: str, name: str) -> None:
        self.reconciled.append((ns, name))

    def probe_due(self, ns: str, name: str) -> bool:
        return False


def _controller() -> tuple[Controller, _Rec]:
    rec = _Rec()
    return Controller(cast(Any, rec), workers=1), rec


def _drain(ctl: Controller) -> list[tuple[str, str]]:
    out = []
    while (k := ctl.queue.get(0)) is not None:
        out.append(k)
        ctl._process(k)
        ctl.queue.done(k)
    return out


def test_events_pick_lanes_and_echoes_are_dropped() -> None:
    ctl, _ = _controller()
    ctl.on_llmconfig(None, _llmc("a", "1"))
    ctl.on_llmconfig(None, _llmc("b", "2"))
    ctl.on_child(None, _deployment("3"))  # a's router, listed
    assert _drain(ctl) == [("ns", "a"), ("ns", "b")]
    ctl.on_child("MODIFIED", _deployment("4", ready=1))  # rollout progress of a's router
    ctl.on_llmconfig("MODIFIED", _llmc("b", "5", gen=2))  # a spec change, later
    ctl.on_llmconfig("MODIFIED", _llmc("a", "own"))  # our own status write coming back
    assert _drain(ctl) == [("ns", "b"), ("ns", "a")]


def test_a_child_seen_while_its_parent_is_reconciled_waits_in_the_child_lane() -> None:
    """Our own create can come back on the watch before the worker has recorded it; it
    must not put the tenant back ahead of real changes. A child edited while nobody
    reconciles its parent is drift, and goes to the spec lane as before."""
    ctl, _ = _controller()
    ctl.on_llmconfig(None, _llmc("a", "1"))
    ctl.on_llmconfig(None, _llmc("b", "2"))
    key = ctl.queue.get(0)
    assert key == ("ns", "a")  # a worker has a ...
    ctl.on_child("ADDED", _deployment("3"))  # ... and a's new router shows up meanwhile
    ctl.queue.done(key)
    ctl.on_llmconfig("MODIFIED", _llmc("c", "4"))  # a new tenant, later (spec lane)
    assert _drain(ctl) == [("ns", "b"), ("ns", "c"), ("ns", "a")]  # a last: child lane

    ctl.on_child("MODIFIED", {**_deployment("5"), "spec": {"replicas": 3}})  # an edit
    ctl.on_llmconfig("MODIFIED", _llmc("d", "6"))
    assert _drain(ctl) == [("ns", "a"), ("ns", "d")]  # drift: spec lane, first come


def test_resync_queues_only_what_changed_since_its_last_reconcile() -> None:
    ctl, rec = _controller()
    for i in range(49):
        ctl.on_llmconfig(None, _llmc(f"t{i}", str(i + 1)))
    ctl.on_llmconfig(None, _llmc("a", "60"))
    _drain(ctl)
    seen, queued, _took = ctl.resync_pass()
    assert (seen, queued) == (50, 0)
    ctl.store.put(_deployment("100"))  # a change whose event was lost
    assert ctl.resync_pass()[1] == 1
    assert _drain(ctl) == [("ns", "a")]
    assert rec.reconciled[-1] == ("ns", "a")
    assert ctl.resync_pass()[1] == 0


def test_a_relisting_drops_objects_deleted_while_the_watch_was_down() -> None:
    ctl, _ = _controller()
    ctl.on_llmconfig(None, _llmc("a", "1"))
    ctl.on_child(None, _deployment("2"))
    ctl.sweep(now=time.monotonic() + 10)  # the first listing: nothing to drop
    _drain(ctl)
    t = time.monotonic()
    ctl.on_llmconfig(None, _llmc("a", "1"))  # re-listing after a broken watch ...
    ctl.on_child(None, {**_deployment("5"), "kind": "Service", "apiVersion": "v1"})
    assert ctl.sweep(now=t + 10) == 0  # ... Deployments listing not over: too early
    assert ctl.store.get("/apis/apps/v1/namespaces/ns/deployments/a-router") is not None
    ctl._listed(None, _deployment("x"))  # the Deployment listing ran, without a-router
    assert ctl.sweep(now=time.monotonic() + 10) == 1
    assert ctl.store.get("/apis/apps/v1/namespaces/ns/deployments/a-router") is None
    assert _drain(ctl) == [("ns", "a")]
