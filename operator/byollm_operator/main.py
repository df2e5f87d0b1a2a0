"""``byollm-operator``: run the kopf handlers, one active replica at a time.

Several replicas are safe through a coordination.k8s.io Lease (the Kubernetes client's
leader election): only the holder runs kopf; the others wait and take over within
``lease_duration`` seconds when it dies. kopf itself runs ``standalone`` (no kopf peering,
so no KopfPeering CRDs to install). Losing the lease (API server unreachable for longer
than the renew deadline, or the Lease taken or deleted) stops kopf, and the process
stands by as a follower again (it never exits for that); a write fence (``leadership``)
keeps a replica that may have lost the Lease from writing. Honours KUBECONFIG (or
in-cluster config).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

import kopf
import kubernetes

from byollm_operator import leadership
from byollm_operator.leadership import Fence
from byollm_operator.settings import Settings

log = logging.getLogger("byollm.operator")


def _load_config() -> None:
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


def _run_kopf(stop: threading.Event, liveness: str | None, memo: Any = None) -> None:
    from byollm_operator import handlers  # noqa: F401 - registers the handlers

    # kopf's default identity asks the password database for the user name; the image's
    # numeric uid 65532 has no entry there, and that crashed the operator pod.
    identity: Any = f"byollm-operator@{socket.gethostname()}/{os.getpid()}"

    async def run() -> None:
        try:
            await kopf.operator(
                clusterwide=True,
                standalone=True,
                stop_flag=stop,
                liveness_endpoint=liveness or None,
                identity=identity,
                memo=memo,
            )
        finally:
            # kopf waits on a threading.Event in an executor thread; release it, or
            # asyncio.run() would wait for that thread forever after a SIGTERM.
            stop.set()

    asyncio.run(run())


def _follower_health(endpoint: str) -> Any:
    """Serve the liveness endpoint while waiting for the Lease (kopf serves it once leading).

    Without this a standby replica never answers its probes and is restarted forever.
    Returns the server (call ``shutdown()``/``server_close()`` before kopf binds the port).
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)

    class _Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == (url.path or "/") else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 8080), _Ok)  # noqa: S104
    threading.Thread(target=server.serve_forever, daemon=True, name="follower-health").start()
    return server


def _lease_lock(settings: Settings, identity: str, fence: Fence) -> Any:
    """A LeaseLock that survives API outages and feeds the write fence.

    The client's LeaseLock catches only ApiException: a refused or reset connection (API
    server or etcd down) escaped and killed the election thread, so a leader went on
    working without renewing (and a second one took over), and a follower never led.
    Here every error is a failed attempt, retried at the next period. After ``release()``
    it never writes again, and the Lease's holder is cleared so a follower takes over at
    its next retry instead of waiting ``lease_duration`` (rolling upgrades, SIGTERM)."""
    from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

    from byollm.kube import Kube
    from byollm_operator.builders import FIELD_MANAGER

    class ReleasableLeaseLock(LeaseLock):
        def __init__(self) -> None:
            super().__init__(settings.lease_name, settings.namespace, identity)  # type: ignore[no-untyped-call]
            # Every Lease call gets a timeout: with etcd down the API server holds requests
            # open, and one hung renewal would keep the election from ever giving up.
            timeout = max(2.0, settings.lease_renew_deadline / 2)
            self.api_instance = _Timed(self.api_instance, timeout)  # type: ignore[assignment]
            self._guard = threading.Lock()
            self._released = False
            self._seen: str | None = None  # holder last read; "" none, "?" deleted
            self.takeover = False  # acquired from another holder (or a deleted Lease)

        def get(self, name: str, namespace: str) -> tuple[bool, Any]:
            try:
                found, record = super().get(name, namespace)  # type: ignore[no-untyped-call]
            except Exception as e:  # no answer: not a verdict on who holds the Lease
                log.warning("reading the lease failed: %s", type(e).__name__)
                return False, e
            if not found and getattr(record, "status", None) == 404:
                fence.shut()  # deleted: anyone may create it now
                self._seen = "?"
            elif found:
                self._seen = getattr(record, "holder_identity", None) or ""
                if self._seen != identity:
                    fence.shut()  # another replica holds it
            return bool(found), record

        def _write(self, op: Any, *args: Any, **kwargs: Any) -> bool:
            started = time.monotonic()
            with self._guard:
                if self._released:
                    return False
                try:
                    ok = bool(op(*args, **kwargs))
                except Exception as e:
                    log.warning("writing the lease failed: %s", type(e).__name__)
                    return False
            if ok:
                if not fence.is_open():  # acquiring, not renewing
                    self.takeover = self._seen not in ("", identity)
                fence.renewed(started)
            return ok

        def create(self, *args: Any, **kwargs: Any) -> bool:
            return self._write(super().create, *args, **kwargs)

        def update(self, *args: Any, **kwargs: Any) -> bool:
            return self._write(super().update, *args, **kwargs)

        def release(self) -> None:
            with self._guard:
                self._released = True
                fence.shut()
                p = (
                    f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}"
                    f"/leases/{settings.lease_name}"
                )
                try:
                    kube = Kube(kubernetes.client.ApiClient(), FIELD_MANAGER)
                    lease = kube.get(p) or {}
                    if lease.get("spec", {}).get("holderIdentity") == identity:
                        kube.merge_patch(p, {"spec": {"holderIdentity": None}})
                        log.info("released the leader lease")
                except Exception as e:  # best effort: the lease expires anyway
                    log.warning("releasing the lease failed: %s", type(e).__name__)

    return ReleasableLeaseLock()


class _Timed:
    """An API object whose every call carries ``_request_timeout``."""

    def __init__(self, api: Any, timeout: float) -> None:
        self._api = api
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return functools.partial(getattr(self._api, name), _request_timeout=self._timeout)


def _elect(settings: Settings, lock: Any, leading: threading.Event, lost: threading.Event) -> None:
    from kubernetes.leaderelection import electionconfig, leaderelection

    config = electionconfig.Config(  # type: ignore[no-untyped-call]
        lock,
        lease_duration=settings.lease_duration,
        renew_deadline=settings.lease_renew_deadline,
        retry_period=settings.lease_retry_period,
        onstarted_leading=leading.set,
        onstopped_leading=lost.set,
    )
    log.info(
        "leader election: %s waiting for lease %s/%s",
        lock.identity,
        settings.namespace,
        settings.lease_name,
    )
    try:
        leaderelection.LeaderElection(config).run()  # type: ignore[no-untyped-call]
    except Exception:
        log.exception("leader election failed")
    finally:
        lost.set()


def _lead_once(settings: Settings, identity: str, fence: Fence) -> bool:
    """Wait for the Lease, run kopf while holding it; True when the Lease was lost (stand
    by again), False when kopf stopped by itself (SIGTERM: exit).

    Losing the Lease does not end the process: exiting would have the kubelet restart it
    with a growing back-off (CrashLoopBackOff, up to 5 minutes) during a long API outage,
    and a fresh interpreter costs seconds of imports. The identity is kept, so the
    replica leads again at once if no other one took over meanwhile."""
    leading, lost = threading.Event(), threading.Event()
    lock = _lease_lock(settings, identity, fence)
    threading.Thread(
        target=_elect,
        args=(settings, lock, leading, lost),
        daemon=True,
        name="leader-election",
    ).start()
    endpoint = settings.liveness_endpoint
    health = _follower_health(endpoint) if endpoint else None
    while not leading.wait(0.5):
        if lost.is_set():  # the election ended without leading: start it over
            if health is not None:
                health.shutdown()
                health.server_close()
            return True
    if lock.takeover:
        # The previous holder sees our record at its next renewal at the latest and stops
        # writing (its fence shuts): give it that long before acting.
        time.sleep(settings.lease_retry_period)
    if health is not None:
        health.shutdown()
        health.server_close()
    stop = threading.Event()

    def _watch_lease() -> None:
        lost.wait()
        if not stop.is_set():
            log.error("lost the leader lease; stopping")
        fence.shut()
        stop.set()

    threading.Thread(target=_watch_lease, daemon=True, name="lease-watch").start()
    log.info("acquired the leader lease; starting")
    try:
        _run_kopf(stop, settings.liveness_endpoint)
    finally:
        lock.release()
    return lost.is_set()


def _run_sharded(settings: Settings, stop: threading.Event) -> int:
    """Every replica runs kopf (watching everything, so a shard taken over is already
    cached) and reconciles only the shards whose Leases it holds (shards.py)."""
    from byollm.kube import Kube
    from byollm_operator.builders import FIELD_MANAGER
    from byollm_operator.shards import ShardManager

    host = os.environ.get("HOSTNAME") or socket.gethostname()
    identity = f"{host}-{uuid.uuid4().hex[:8]}".lower()[:200]
    mgr = ShardManager(
        Kube(kubernetes.client.ApiClient(), FIELD_MANAGER),
        settings.namespace,
        settings.lease_name,
        settings.shards,
        identity,
        lease_duration=settings.lease_duration,
        renew_deadline=settings.lease_renew_deadline,
        retry_period=settings.lease_retry_period,
    )
    log.info("sharded: %d shards, identity %s", settings.shards, identity)
    leadership.install(mgr)  # the per-shard write fence
    mgr.start()
    try:
        _run_kopf(stop, settings.liveness_endpoint, memo=kopf.Memo(shards=mgr))
    finally:
        mgr.stop()
    return 0


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _few_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any thread starts. glibc gives each thread that
    allocates concurrently an arena of its own (up to 8 per core) and keeps what is freed
    in each: with kopf's loop, the reconcile workers and the Events thread all decoding
    API answers, RSS grows with the arenas, not with what is in use (the usual remedy is
    ``MALLOC_ARENA_MAX=2``; done here so every way of running the operator gets it). A
    no-op on other C libraries or when the environment already sets it."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    _few_malloc_arenas()
    parser = argparse.ArgumentParser(prog="byollm-operator", description=__doc__)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        help="run immediately (a single replica); also BYOLLM_LEADER_ELECTION=false",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for noisy in ("kubernetes", "urllib3", "httpx", "httpcore", "leaderelection", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    _load_config()
    if settings.shards > 1:
        return _run_sharded(settings, threading.Event())
    if settings.leader_election and not args.no_leader_election:
        identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        fence = Fence(settings.lease_renew_deadline)
        leadership.install(fence)
        while _lead_once(settings, identity, fence):
            log.warning("standing by as a follower")
        return 0
    _run_kopf(threading.Event(), settings.liveness_endpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
