"""What keeps the operator up when the API server is not: the Lease lock treats a refused
connection as a failed attempt (not a crash of the election thread), the write fence,
per-object retry with backoff, and the apply helper's changed-check. Real sockets: the
"API server" here is a loopback port nobody listens on."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import kubernetes
import pytest
import urllib3

from byollm.kube import Kube, WriteFenced, _comparable
from byollm_dev.controlplane import free_port
from byollm_operator import leadership
from byollm_operator.cache import WorkQueue
from byollm_operator.leadership import Fence
from byollm_operator.main import _lease_lock
from byollm_operator.settings import Settings


@contextlib.contextmanager
def _default_api(host: str) -> Iterator[kubernetes.client.Configuration]:
    """The default client configuration pointed at ``host`` (no retries) for the block."""
    old = kubernetes.client.Configuration.get_default_copy()
    cfg = kubernetes.client.Configuration()
    cfg.host = host
    cfg.retries = 0
    kubernetes.client.Configuration.set_default(cfg)
    try:
        yield cfg
    finally:
        kubernetes.client.Configuration.set_default(old)


@pytest.fixture
def dead_api() -> Iterator[kubernetes.client.Configuration]:
    """The default client configuration pointed at a closed loopback port."""
    with _default_api(f"http://127.0.0.1:{free_port()}") as cfg:
        yield cfg


def test_lease_lock_survives_a_refused_connection(
    dead_api: kubernetes.client.Configuration,
) -> None:
    """The client's LeaseLock let urllib3's error escape and kill the election thread: a
    leader then worked on without renewing, a follower never led."""
    from kubernetes.leaderelection import electionconfig, leaderelection

    fence = Fence(renew_deadline=3)
    lock = _lease_lock(Settings(), "me", fence)
    found, err = lock.get("byollm-operator", "byollm-system")
    assert found is False
    assert err is not None
    config = electionconfig.Config(
        lock, lease_duration=4, renew_deadline=3, retry_period=1,
        onstarted_leading=lambda: None, onstopped_leading=lambda: None,
    )  # fmt: skip
    election = leaderelection.LeaderElection(config)
    assert election.try_acquire_or_renew() is False  # a failed attempt, retried later
    assert not fence.is_open()


def test_lease_calls_time_out_on_a_silent_api_server() -> None:
    """With etcd down the API server holds requests open: a renewal without a timeout hung
    for good, so the leader never gave up the Lease (and its fence stayed shut)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts (the kernel does), never answers
    try:
        with _default_api(f"http://127.0.0.1:{silent.getsockname()[1]}"):
            settings = Settings(lease_renew_deadline=3)
            lock = _lease_lock(settings, "me", Fence(renew_deadline=3))
            result: list[bool] = []
            t = threading.Thread(target=lambda: result.append(lock.get("l", "ns")[0]), daemon=True)
            started = time.monotonic()
            t.start()
            t.join(10)
            assert result == [False], "the Lease read hung"
            assert time.monotonic() - started < 5
    finally:
        silent.close()


def test_fence_opens_on_renewal_and_shuts_on_loss() -> None:
    fence = Fence(renew_deadline=0.3)
    assert not fence.is_open()
    fence.renewed(time.monotonic())
    assert fence.is_open()
    time.sleep(0.35)
    assert not fence.is_open()  # no renewal within the deadline: a follower may lead soon
    fence.renewed(time.monotonic())
    fence.shut()  # another holder seen, or the Lease deleted
    assert not fence.is_open()


def test_fenced_write_is_never_sent(dead_api: kubernetes.client.Configuration) -> None:
    kube = Kube(kubernetes.client.ApiClient(dead_api), "byollm-operator")
    fence = Fence(renew_deadline=3)
    leadership.install(fence)
    kube.write_fence = leadership.check
    try:
        with pytest.raises(WriteFenced):
            kube.merge_patch("/api/v1/namespaces/x/secrets/y", {"data": {}})
        # Reads are not fenced: with no server they fail as unreachable.
        with pytest.raises(urllib3.exceptions.HTTPError):
            kube.get("/api/v1/namespaces/x/secrets/y")
        fence.renewed(time.monotonic())
        with pytest.raises(urllib3.exceptions.HTTPError):  # the fence is open: sent
            kube.merge_patch("/api/v1/namespaces/x/secrets/y", {"data": {}})
    finally:
        leadership.install(None)


def test_failed_reconcile_is_retried_with_capped_backoff() -> None:
    queue = WorkQueue(backoff_base=0.01, backoff_max=0.04)
    key = ("ns", "a")
    delays = [queue.retry(key) for _ in range(5)]
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert queue.get(1.0) == key
    assert queue.get(0.1) is None  # one pending retry per object, however many failures
    queue.done(key)
    queue.forget(key)
    assert queue.retry(key) == 0.01  # a success resets the backoff
    assert WorkQueue().backoff_base == 0.5
    assert WorkQueue().backoff_max == 10.0


def test_changed_check_ignores_status() -> None:
    """A Deployment's status moves on its own (rollouts); comparing it made the operator
    re-apply unchanged children: duplicate writes."""
    live = {"metadata": {"name": "d", "resourceVersion": "1"}, "spec": {"x": 1}, "status": {}}
    dry = {
        "metadata": {"name": "d", "resourceVersion": "2"},
        "spec": {"x": 1},
        "status": {"updatedReplicas": 1},
    }
    assert _comparable(live) == _comparable(dry)
    assert _comparable(live) != _comparable({**dry, "spec": {"x": 2}})
