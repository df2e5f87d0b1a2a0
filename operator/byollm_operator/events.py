"""Kubernetes Events, posted off the reconcile's path.

A reconcile decides an Event (Created, RollingOut, ModeSwitched, Wiped, a Warning) and
goes on; one background thread posts it. Events only inform, so a change reconcile makes
its three writes (Secret, Deployment, status) without waiting for a fourth, as client-go's
recorder does. What is queued is bounded: beyond ``capacity`` an Event is dropped and
counted, never allowed to grow memory or stall a worker while the API server is slow.
Each Event is posted under the shard fence of its namespace, like the reconcile's writes.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any

from byollm.api import GROUP, VERSION
from byollm.kube import Kube, KubeError, WriteFenced
from byollm_operator import conditions, controller

log = logging.getLogger("byollm.operator")


def event_body(
    obj: dict[str, Any],
    type_: str,
    reason: str,
    message: str,
    component: str,
    instance: str,
) -> dict[str, Any]:
    """A core/v1 Event about ``obj``, timestamped now (when the reconcile decided it)."""
    meta, now = obj["metadata"], conditions.now()
    return {
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
        "reportingComponent": component,
        "reportingInstance": instance,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventRecorder:
    """``recorder(obj, type, reason, message)`` queues an Event and returns at once."""

    def __init__(self, kube: Kube, component: str, instance: str, capacity: int = 1000) -> None:
        self.kube = kube
        self.component = component
        self.instance = instance
        self.capacity = capacity
        self.dropped = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def __call__(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        body = event_body(obj, type_, reason, message, self.component, self.instance)
        with self._cond:
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("Events queue full: %d Events dropped so far", self.dropped)
                return
            self._queue.append(body)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="byollm-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Post what is queued, for at most ``timeout`` seconds, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                body = self._queue.popleft()
            self._post(body)

    def _post(self, body: dict[str, Any]) -> None:
        ns = body["metadata"]["namespace"]
        controller.CURRENT.namespace = ns  # the shard fence of the Event's namespace
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{ns}/events", body=body)
        except WriteFenced:
            log.info("event %s not posted: Lease not surely held", body["reason"])
        except (KubeError, OSError) as e:
            log.warning("posting event %s failed: %s", body["reason"], e)
        except Exception:  # a daemon that dies would silently drop every later Event
            log.exception("posting event %s failed", body["reason"])
        finally:
            controller.CURRENT.namespace = None
