"""The operator's Events leave from one background thread: a reconcile queues them and goes
on; all of them reach the API server, even at shutdown, and a full queue drops, never
blocks."""

from __future__ import annotations

import pytest

from byollm.kube import Kube
from byollm_operator.events import EventRecorder

pytestmark = pytest.mark.cluster


def _llmc(ns: str, name: str) -> dict[str, object]:
    return {
        "apiVersion": "byollm.io/v1alpha1",
        "kind": "LLMConfig",
        "metadata": {"name": name, "namespace": ns, "uid": "0000-uid"},
    }


def _ours(kube: Kube, ns: str, name: str) -> list[dict[str, object]]:
    return [
        e
        for e in kube.list(f"/api/v1/namespaces/{ns}/events")
        if e["involvedObject"]["name"] == name
    ]


def test_events_are_posted_in_order_and_flushed_on_stop(kube: Kube, namespace: str) -> None:
    rec = EventRecorder(kube, "byollm-operator", "op-0")
    rec.start()
    obj = _llmc(namespace, "acme")
    reasons = ["Created", "RollingOut", "ModeSwitched", "Wiped"]
    for r in reasons:
        rec(obj, "Normal", r, f"{r} happened")
    rec(obj, "Warning", "SecretNotFound", "x" * 5000)
    rec.stop(timeout=10)

    events = _ours(kube, namespace, "acme")
    assert rec.pending() == 0
    assert rec.dropped == 0
    assert sorted(str(e["reason"]) for e in events) == sorted([*reasons, "SecretNotFound"])
    for e in events:
        assert e["reportingComponent"] == "byollm-operator"
        assert e["reportingInstance"] == "op-0"
        assert e["source"]["component"] == "byollm-operator"
        assert e["involvedObject"]["kind"] == "LLMConfig"
        assert len(e["message"]) <= 1024
    assert {e["type"] for e in events} == {"Normal", "Warning"}


def test_a_full_queue_drops_new_events_and_never_blocks(kube: Kube, namespace: str) -> None:
    rec = EventRecorder(kube, "byollm-operator", "op-0", capacity=2)
    obj = _llmc(namespace, "burst")
    for i in range(5):  # the sender is not running yet: the queue fills
        rec(obj, "Normal", "RollingOut", f"change {i}")
    assert rec.pending() == 2
    assert rec.dropped == 3

    rec.start()
    rec.stop(timeout=10)
    messages = sorted(str(e["message"]) for e in _ours(kube, namespace, "burst"))
    assert messages == ["change 0", "change 1"]  # the first two kept, the rest dropped


def test_a_refused_event_does_not_stop_the_sender(kube: Kube, namespace: str) -> None:
    rec = EventRecorder(kube, "byollm-operator", "op-0")
    rec.start()
    rec(_llmc("no-such-namespace-xyz", "gone"), "Normal", "Created", "refused: no namespace")
    rec(_llmc(namespace, "after"), "Normal", "Created", "posted after a refusal")
    rec.stop(timeout=10)
    assert [e["message"] for e in _ours(kube, namespace, "after")] == ["posted after a refusal"]
