"""The operator while the cluster misbehaves, on a real control plane.

For each fault: N LLMConfigs converged; then a change to each (model change, key
rotation, active toggle; half made as the fault starts, half while it lasts); then the
fault ends. Every fault must show:

* the operator process never exits (it may restart itself in place, by design);
* every LLMConfig converges (status, router Secret, Deployment rolled) - the time from
  recovery to each is recorded (p50/p99);
* exactly once: in the API server's audit log, no child was written twice and every
  change was written (no lost generation);
* no router Secret was ever stored with the four BYO keys partly there (a watch sees
  every version).

The figures go to ``<control plane logs>/faults.json``, and into ``docs/faults.md`` when
``BYOLLM_FAULTS_DOCS`` names it (``hack/faults.sh``: the full form, 50 objects).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from faultlib import Audit, Fleet, SecretWatch, Sizes, summary, wait
from faultproxy import FaultProxy
from operator_helpers import OPERATOR_NS, OperatorProcess

from byollm.kube import Kube, path
from byollm_dev.controlplane import ControlPlane
from byollm_operator import faultpoints

pytestmark = [pytest.mark.cluster, pytest.mark.faults]

OPERATOR_ENV = {
    # The safety-net resync must not be what repairs things: make it rare.
    "BYOLLM_RESYNC_PERIOD": "600",
    "BYOLLM_CREDENTIALS_PROBE_ENABLED": "false",
}


@dataclass
class Row:
    fault: str
    n: int
    lasted: float
    applied_p50: float
    applied_p99: float
    p50: float
    p99: float
    slowest: float
    operator: str
    child_writes: int
    duplicates: int
    secret_versions: int
    half_written: int


RESULTS: list[Row] = []


@pytest.fixture(scope="module", autouse=True)
def report(fault_cp: ControlPlane, sizes: Sizes) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    (fault_cp.log_dir / "faults.json").write_text(json.dumps([asdict(r) for r in RESULTS]))
    table = render(RESULTS, sizes)
    print("\n" + table)
    target = os.environ.get("BYOLLM_FAULTS_DOCS")
    if target:
        doc = Path(target)
        text = doc.read_text()
        begin, end = "<!-- faults:begin -->", "<!-- faults:end -->"
        new = f"{begin}\n{table}\n{end}"
        doc.write_text(re.sub(f"{begin}.*?{end}", lambda _: new, text, flags=re.S))


def render(rows: list[Row], sizes: Sizes) -> str:
    load = os.getloadavg()[0]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with {rows[0].n} LLMConfigs, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end.",
        "",
        "| fault | lasted | recovery → operator applied p50 / p99 "
        "| recovery → Ready (rolled) p50 / p99 / slowest | operator process "
        "| child writes (duplicates) | router Secret versions seen (half-written) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.fault} | {r.lasted:.0f} s | {r.applied_p50:.1f} / {r.applied_p99:.1f} s "
            f"| {r.p50:.1f} / {r.p99:.1f} / {r.slowest:.1f} s "
            f"| {r.operator} | {r.child_writes} ({r.duplicates}) "
            f"| {r.secret_versions} ({r.half_written}) |"
        )
    return "\n".join(lines)


@pytest.fixture
def ns(fault_kube: Kube) -> Iterator[str]:
    name = f"f-{os.urandom(3).hex()}"
    fault_kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    try:
        yield name
    finally:
        fault_kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def operators(fault_cp: ControlPlane, fault_kube: Kube) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operator replicas (stopped at the end; the Lease is deleted between tests)."""
    started: list[OperatorProcess] = []

    def start(kubeconfig: Path | None = None, **env: str) -> OperatorProcess:
        op = OperatorProcess(
            kubeconfig or fault_cp.operator_kubeconfig,
            fault_cp.log_dir,
            extra_env={**OPERATOR_ENV, **env},
        )
        op.start()
        started.append(op)
        return op

    try:
        yield start
    finally:
        for op in started:
            op.stop()
        lease = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NS}/leases/byollm-operator"
        if fault_kube.get(lease) is not None:
            fault_kube.request("DELETE", lease)


def restarts_in_place(op: OperatorProcess) -> int:
    return op.log().count("standing by as a follower")


def alive(op: OperatorProcess) -> bool:
    return op.proc is not None and op.proc.poll() is None


def run_fault(
    fault: str,
    cp: ControlPlane,
    kube: Kube,
    ns: str,
    sizes: Sizes,
    inject: Callable[[Fleet], tuple[float, float]],
    survivors: Callable[[], list[OperatorProcess]],
) -> tuple[Row, list[dict[str, Any]]]:
    """Fleet up, fault (``inject`` makes the changes and returns (recovery time, how long
    the fault lasted)), then the four checks. Returns the row and the operator's writes."""
    fleet = Fleet(kube, ns, sizes.n)
    fleet.create()
    fleet.wait_converged(time.monotonic(), timeout=90 + sizes.n)
    audit = Audit(cp.log_dir / "audit.log")
    audit.mark()
    watch = SecretWatch(cp.server, cp.admin_token, cp.ca_file, ns).start()
    try:
        recovered, lasted = inject(fleet)
        applied: dict[str, float] = {}
        times = fleet.wait_converged(recovered, timeout=120 + sizes.n, applied=applied)
        time.sleep(3)  # a late duplicate write would land here
    finally:
        watch.stop()
    assert len(fleet.changed) == sizes.n

    writes = audit.operator_writes(ns)
    counted = _children(writes)
    duplicates = {k: v for k, v in counted.items() if v > 1}
    assert not duplicates, f"children written more than once: {duplicates}"
    # A killed operator's write in flight (another worker's, at the moment of the kill) is
    # answered 504 to nobody, yet may be committed: then it is that change's one write.
    cut = _children(audit.operator_writes(ns, cut_off=True))
    for name in fleet.changed:  # every change written: the router Secret and Deployment
        for child in (("secrets", f"{name}-llm"), ("deployments", f"{name}-router")):
            assert counted.get(child) == 1 or (not counted.get(child) and cut.get(child)), (
                name,
                child,
            )
    assert not watch.partial, f"half-written router Secrets seen: {watch.partial}"
    assert watch.versions >= sizes.n

    ops = survivors()
    for op in ops:
        assert alive(op), f"operator exited {op.proc and op.proc.returncode}:\n{op.log()[-3000:]}"
    restarts = sum(restarts_in_place(op) for op in ops)
    p50, p99 = summary(list(times.values()))
    a50, a99 = summary(list(applied.values()))
    row = Row(
        fault=fault,
        n=sizes.n,
        lasted=lasted,
        applied_p50=a50,
        applied_p99=a99,
        p50=p50,
        p99=p99,
        slowest=max(times.values()),
        operator=(
            "kept running" if not restarts else f"kept running; {restarts} restart(s) in place"
        ),
        child_writes=sum(counted.values()),
        duplicates=0,
        secret_versions=watch.versions,
        half_written=len(watch.partial),
    )
    RESULTS.append(row)
    print(row)
    return row, writes


def _changes_in_background(fleet: Fleet, first: int, until: float) -> threading.Thread:
    """Clients making changes while the API is down: they retry until it answers."""
    t = threading.Thread(
        target=lambda: [fleet.change(i, retry_until=until) for i in range(first, fleet.n)],
        daemon=True,
    )
    t.start()
    return t


def _children(writes: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Writes per child object (resource, name); Events, Leases and subresources left out."""
    counted: dict[tuple[str, str], int] = {}
    for e in writes:
        ref = e["objectRef"]
        if ref.get("subresource") or ref.get("resource") in ("events", "leases"):
            continue
        key = (ref["resource"], ref.get("name", ""))
        counted[key] = counted.get(key, 0) + 1
    return counted


def _outage(
    fleet: Fleet, sizes: Sizes, down: Callable[[], None], up: Callable[[], None]
) -> tuple[float, float]:
    """Half the changes just before ``down``, the rest from clients retrying through the
    outage; ``up`` after it. Returns (recovery time, how long the fault lasted); recovery
    counts from the restart, so the component's own start-up counts too."""
    half = fleet.n // 2
    for i in range(half):  # the operator is busy applying these as the fault starts
        fleet.change(i)
    t0 = time.monotonic()
    down()
    clients = _changes_in_background(fleet, half, time.monotonic() + sizes.outage + 120)
    time.sleep(sizes.outage)
    recovered = time.monotonic()
    up()
    clients.join()
    return recovered, recovered - t0


def test_apiserver_stopped(
    fault_cp: ControlPlane, fault_kube: Kube, ns: str, sizes: Sizes, operators: Any
) -> None:
    op = operators()
    op.wait_leading()

    def inject(fleet: Fleet) -> tuple[float, float]:
        return _outage(
            fleet,
            sizes,
            lambda: fault_cp.stop_component("kube-apiserver", grace=5),  # then SIGKILL
            lambda: fault_cp.start_component("kube-apiserver"),
        )

    run_fault("kube-apiserver stopped", fault_cp, fault_kube, ns, sizes, inject, lambda: [op])


def test_etcd_killed(
    fault_cp: ControlPlane, fault_kube: Kube, ns: str, sizes: Sizes, operators: Any
) -> None:
    op = operators()
    op.wait_leading()

    def restart() -> None:
        fault_cp.start_component("etcd")
        wait("API server ready again", lambda: fault_cp.request("/readyz") == "ok", 60)

    def inject(fleet: Fleet) -> tuple[float, float]:
        return _outage(fleet, sizes, lambda: fault_cp.kill_component("etcd"), restart)

    run_fault("etcd killed (SIGKILL)", fault_cp, fault_kube, ns, sizes, inject, lambda: [op])


def test_operator_killed_mid_apply(
    fault_cp: ControlPlane, fault_kube: Kube, ns: str, sizes: Sizes, operators: Any
) -> None:
    """Killed after writing a router Secret, before its Deployment: the next operator
    finds the half-applied object and finishes it (no Secret rewritten)."""
    first = operators()
    first.wait_leading()
    replacement: list[OperatorProcess] = []
    crashed: list[str] = []

    def inject(fleet: Fleet) -> tuple[float, float]:
        first.stop()  # clean hand-over to an operator armed to die mid-apply
        armed = operators(**{faultpoints.ENV: faultpoints.AFTER_LLM_SECRET})
        armed.wait_leading()
        old_hash = {
            fleet.name(i): _template_hash(fault_kube, ns, fleet.name(i)) for i in range(fleet.n)
        }
        t0 = time.monotonic()
        fleet.change_all()
        assert armed.proc is not None
        assert armed.proc.wait(60) == 137, armed.log()[-2000:]
        # The partial state the crash left: a new router Secret behind an old Deployment.
        half_applied = [
            fleet.name(i)
            for i in range(fleet.n)
            if fleet.secret_final(i)
            and _template_hash(fault_kube, ns, fleet.name(i)) == old_hash[fleet.name(i)]
        ]
        assert half_applied, "the crash point was not reached mid-apply"
        crashed.extend(half_applied)
        replacement.append(operators())
        return time.monotonic(), time.monotonic() - t0

    run_fault(
        "operator SIGKILLed between router Secret and Deployment",
        fault_cp,
        fault_kube,
        ns,
        sizes,
        inject,
        lambda: replacement,
    )
    # The rollout Event of the half-applied object says what rolled, although its router
    # Secret already held the new config when the replacement looked.
    for name in crashed:
        events = fault_kube.list(
            f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3D{name}"
        )
        rolling = [e["message"] for e in events if e.get("reason") == "RollingOut"]
        assert rolling, f"no RollingOut Event for {name}"
        assert all(not m.startswith(" ") for m in rolling), rolling


def _template_hash(kube: Kube, ns: str, name: str) -> str:
    dep = kube.get(path("apps/v1", "Deployment", ns, f"{name}-router")) or {}
    annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
    return str(annotations.get("byollm.io/config-hash"))


@pytest.mark.parametrize(
    ("mode", "label", "counted"),
    [
        pytest.param(
            "errors",
            "API answers 429/500 (some writes committed, then answered 500)",
            ("written-then-500", "429", "500"),
            id="api_answers_429_and_500",
        ),
        pytest.param(
            "cut-watches",
            "every watch stream cut (TCP reset) within 0.3-1.5 s",
            ("watches-cut",),
            id="watch_streams_cut",
        ),
    ],
)
def test_api_proxy_fault(
    mode: str,
    label: str,
    counted: tuple[str, ...],
    fault_cp: ControlPlane,
    fault_kube: Kube,
    ns: str,
    sizes: Sizes,
    proxy: FaultProxy,
    operators: Any,
) -> None:
    """The operator's API traffic through a proxy that misbehaves as ``mode`` says; the
    proxy must have done so (each of ``counted`` happened)."""
    op = operators(kubeconfig=proxy.kubeconfig)
    op.wait_leading()

    def inject(fleet: Fleet) -> tuple[float, float]:
        half = fleet.n // 2
        for i in range(half):
            fleet.change(i)
        t0 = time.monotonic()
        proxy.set_mode(mode)
        time.sleep(sizes.window / 2)
        for i in range(half, fleet.n):  # straight to the API server: a tenant's change
            fleet.change(i)
        time.sleep(sizes.window / 2)
        proxy.set_mode("pass")
        return time.monotonic(), time.monotonic() - t0

    run_fault(label, fault_cp, fault_kube, ns, sizes, inject, lambda: [op])
    print(dict(proxy.counts))
    for what in counted:
        assert proxy.counts[what] > 0, what


def test_lease_deleted(
    fault_cp: ControlPlane, fault_kube: Kube, ns: str, sizes: Sizes, operators: Any
) -> None:
    """Two replicas; the Lease is deleted under the leader's feet while changes come in.
    Whichever replica leads afterwards, the other never writes once it has."""
    a = operators()
    a.wait_leading()
    b = operators()
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NS}/leases/byollm-operator"

    def inject(fleet: Fleet) -> tuple[float, float]:
        fault_kube.request("DELETE", lease)
        t0 = time.monotonic()
        fleet.change_all()
        return t0, 0.0

    _, writes = run_fault(
        "leader's Lease deleted (2 replicas)",
        fault_cp,
        fault_kube,
        ns,
        sizes,
        inject,
        lambda: [a, b],
    )
    actors = [
        e.get("userAgent", "")
        for e in writes
        if (e.get("objectRef") or {}).get("resource") not in ("events", "leases")
    ]
    switches = [x for x, y in itertools.pairwise(actors) if x != y]
    assert len(set(actors)) <= 2, f"more than two writers: {set(actors)}"
    assert len(switches) <= 1, f"replicas interleaved: {actors}"
    holder = (fault_kube.get(lease) or {}).get("spec", {}).get("holderIdentity")
    assert holder, "no replica holds the Lease afterwards"
