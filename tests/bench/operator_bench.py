"""Operator control-plane benchmark: N LLMConfigs on the real control plane with kwok nodes.

    python tests/bench/operator_bench.py [--short] [--sizes 100,1000] [--out FILE]

For each size N, on a fresh local control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok; ``byollm_dev.controlplane``) with the operator running as in
production (its own non-admin user and RBAC, leader election on, credentials probe off so
no provider traffic is involved):

1. create N tenants (a key Secret + a BYO LLMConfig each, 100 per namespace) as fast as
   8 client threads can, and watch until every LLMConfig is Ready at its generation
   (``SecretSynced`` True = the reconcile finished; Ready = the router pod runs on kwok);
2. change the provider model of M of them at a steady rate and time each change until a
   new ReplicaSet appears and until Ready again;
3. stay idle for at least one full resync pass and count the operator's API writes in the
   API server's audit log (dry-run applies are reads and counted apart; Lease renewals of
   leader election are counted apart);
4. sample the operator's RSS and CPU throughout.

Results go to ``build/bench/operator.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import ssl
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from benchlib import RESULTS_DIR, ROOT, PeakRss, Service, machine_load, percentile, poll, write_json
from kubernetes import config as kconfig

from byollm import api
from byollm.api import LLMConfigSpec
from byollm.kube import Kube, path
from byollm_dev import controlplane, generate, rbac
from byollm_operator import builders
from byollm_operator.builders import FIELD_MANAGER
from byollm_operator.settings import Settings
from byollm_router import contract

OPERATOR_NS = "byollm-system"
PER_NAMESPACE = 100
OPERATOR_USER = controlplane.OPERATOR_USER
CHANGED_MODEL = "qwen/qwen3-235b-a22b-instruct"


@dataclass
class Plan:
    sizes: tuple[int, ...]
    changes: dict[int, int]  # size -> number of provider changes
    change_rate: float  # changes issued per second
    resync_s: float
    ready_timeout_s: float
    change_when: str = "ready"  # "ready": after all are Ready; "synced": during the burst
    nodes: int = 2
    wait_ready: bool = True  # False: stop at "all reconciled" (sizes the machine cannot run)
    replicas: int = 1  # operator replicas, the tenants sharded across them (BYOLLM_SHARDS)

    @classmethod
    def full(cls, sizes: tuple[int, ...]) -> Plan:
        # ~2 reconciles per tenant (children, then Ready) at >= 3 per second on a shared
        # 2-core machine: 10,000 tenants need more than the 25 minutes 0.15 s each gave.
        return cls(sizes, {n: min(50, n) for n in sizes}, 5.0, 30.0, max(600.0, 0.4 * max(sizes)))

    @classmethod
    def short(cls) -> Plan:
        return cls((5,), {5: 3}, 5.0, 3.0, 60.0)


# --- watching ------------------------------------------------------------------------------


class Watch:
    """Watches LLMConfigs and ReplicaSets cluster-wide (admin identity), timestamping what
    the benchmark needs: first Ready / SecretSynced per generation, ReplicaSet creations."""

    def __init__(self, cp: controlplane.ControlPlane) -> None:
        self.cp = cp
        self.lock = threading.Lock()
        self.ready: dict[tuple[str, str, int], float] = {}
        self.synced: dict[tuple[str, str, int], float] = {}
        self.rs_added: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
        # router Deployment -> (time, pod template config hash) per event: when the
        # operator's apply of a new config landed (before any controller acted on it)
        self.dep_hash: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
        # router Deployment -> first time it had an available replica (the floor's Ready)
        self.dep_available: dict[tuple[str, str], float] = {}
        self.events = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(p, h), daemon=True)
            for p, h in (
                (f"/apis/{api.GROUP}/{api.VERSION}/{api.PLURAL}", self._on_llmc),
                ("/apis/apps/v1/replicasets", self._on_rs),
                ("/apis/apps/v1/deployments", self._on_dep),
            )
        ]

    def start(self) -> Watch:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, resource: str, handle: Any) -> None:
        ctx = ssl.create_default_context(cafile=str(self.cp.ca_file))
        headers = {"Authorization": f"Bearer {self.cp.admin_token}"}
        rv = ""
        with httpx.Client(verify=ctx, headers=headers, timeout=httpx.Timeout(10, read=90)) as c:
            while not self._stop.is_set():
                params = {"watch": "1", "timeoutSeconds": "60", "allowWatchBookmarks": "true"}
                if rv:
                    params["resourceVersion"] = rv
                try:
                    with c.stream("GET", self.cp.server + resource, params=params) as r:
                        for line in r.iter_lines():
                            if self._stop.is_set():
                                return
                            if not line:
                                continue
                            ev = json.loads(line)
                            obj = ev.get("object", {})
                            if ev.get("type") == "ERROR":
                                rv = ""
                                break
                            rv = obj.get("metadata", {}).get("resourceVersion", rv)
                            if ev.get("type") in ("ADDED", "MODIFIED"):
                                handle(ev["type"], obj, time.monotonic())
                except httpx.HTTPError:
                    time.sleep(0.2)

    def new_rs(self, k: tuple[str, str], since: float) -> float | None:
        """When the first ReplicaSet of LLMConfig ``k``'s router made at or after ``since``
        appeared (call with the lock held)."""
        later = [ts for ts, _ in self.rs_added.get((k[0], builders.router_name(k[1])), [])]
        return next((ts for ts in later if ts >= since), None)

    def _on_llmc(self, type_: str, obj: dict[str, Any], now: float) -> None:
        meta, st = obj["metadata"], obj.get("status") or {}
        gen = int(meta.get("generation", 1))
        if int(st.get("observedGeneration", 0)) != gen:
            return
        key = (meta["namespace"], meta["name"], gen)
        conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
        with self.lock:
            self.events += 1
            if conds.get("SecretSynced") == "True":
                self.synced.setdefault(key, now)
            if conds.get("Ready") == "True":
                self.ready.setdefault(key, now)

    def _on_dep(self, type_: str, obj: dict[str, Any], now: float) -> None:
        meta = obj["metadata"]
        tmpl = obj.get("spec", {}).get("template", {}).get("metadata", {})
        cfg_hash = (tmpl.get("annotations") or {}).get(builders.CONFIG_HASH_ANNOTATION, "")
        available = int((obj.get("status") or {}).get("availableReplicas") or 0) > 0
        with self.lock:
            seen = self.dep_hash[(meta["namespace"], meta["name"])]
            if not seen or seen[-1][1] != cfg_hash:
                seen.append((now, cfg_hash))
            if available:
                self.dep_available.setdefault((meta["namespace"], meta["name"]), now)

    def _on_rs(self, type_: str, obj: dict[str, Any], now: float) -> None:
        if type_ != "ADDED":
            return
        meta = obj["metadata"]
        owner = next((o["name"] for o in meta.get("ownerReferences", [])), "")
        tmpl = obj.get("spec", {}).get("template", {}).get("metadata", {})
        cfg_hash = (tmpl.get("annotations") or {}).get(builders.CONFIG_HASH_ANNOTATION, "")
        with self.lock:
            self.rs_added[(meta["namespace"], owner)].append((now, cfg_hash))


# --- audit log -----------------------------------------------------------------------------


_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class Audit:
    """Counts the operator user's requests in the API server's audit log (Metadata level,
    writes only; see ``controlplane._audit_policy``)."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def _rotated(self) -> list[Path]:
        """The API server's earlier audit files (``audit-<time>.log``), oldest first."""
        return sorted(self.log.parent.glob(f"{self.log.stem}-*{self.log.suffix}"))

    def offset(self) -> tuple[int, int]:
        """Where the log ends now: (files rotated so far, size of the current file)."""
        return len(self._rotated()), self.log.stat().st_size if self.log.exists() else 0

    def _since(self, start: tuple[int, int]) -> bytes:
        """Everything logged since ``start``, across rotations (at ~100 MB the API server
        renames the file and starts a new one: a 10,000-tenant run rotates it)."""
        rotated, offset = start
        files = [*self._rotated()[rotated:], self.log]
        parts = []
        for i, f in enumerate(files):
            with f.open("rb") as fh:
                fh.seek(offset if i == 0 else 0)
                parts.append(fh.read())
        return b"".join(parts)

    def count(self, start: tuple[int, int]) -> dict[str, Any]:
        writes: dict[str, int] = defaultdict(int)
        dry = leases = 0
        for line in self._since(start).splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("user", {}).get("username") != OPERATOR_USER:
                continue
            if ev.get("stage") not in (None, "ResponseComplete"):
                continue
            if ev.get("verb") not in _WRITE_VERBS:  # a watch or list ending in the window
                continue
            resource = ev.get("objectRef", {}).get("resource", "?")
            sub = ev.get("objectRef", {}).get("subresource")
            if "dryRun=" in ev.get("requestURI", ""):
                dry += 1
            elif resource == "leases":
                leases += 1
            else:
                writes[resource + (f"/{sub}" if sub else "")] += 1
        return {
            "writes": sum(writes.values()),
            "by_resource": dict(writes),
            "dry_run_applies": dry,
            "lease_writes": leases,
        }


# --- the run -------------------------------------------------------------------------------


def _install(kube: Kube) -> None:
    manifest = yaml.safe_load((ROOT / generate.CRD_PATHS[0]).read_text())
    subject = {"kind": "User", "name": OPERATOR_USER, "apiGroup": "rbac.authorization.k8s.io"}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NS}},
        manifest,
        *rbac.manifests(namespace=OPERATOR_NS, subject=subject),
    ]
    for doc in docs:
        kube.apply(doc, field_manager="byollm-bench")
    crd = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{api.CRD_NAME}"

    def served() -> bool:
        got = kube.get(crd) or {}
        conds = (got.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
            return False
        try:
            kube.request("GET", f"/apis/{api.GROUP}/{api.VERSION}/{api.PLURAL}")
        except Exception:
            return False
        return True

    poll("CRD served", served, 60, 0.2)


def _tenant(i: int) -> tuple[str, str]:
    return f"bench-{i // PER_NAMESPACE}", f"t{i:05d}"


def _api_key(i: int) -> str:
    return f"sk-bench-{i:05d}-0123456789abcdef"


def _create_tenant(kube: Kube, i: int) -> tuple[tuple[str, str], float, dict[str, Any]]:
    """A key Secret and a BYO LLMConfig: (namespace, name), when, the created LLMConfig."""
    ns, name = _tenant(i)
    key = _api_key(i)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": f"{name}-key",
                "namespace": ns,
                "labels": {contract.LLM_KEY_LABEL: "true"},
            },
            "data": {"apiKey": base64.b64encode(key.encode()).decode()},
        }
    )
    llmc = kube.create(
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "mode": "BYO",
                "provider": {
                    "type": "openrouter",
                    "defaultModel": "qwen/qwen3-30b-a3b-instruct",
                    "apiKey": {"secretKeyRef": {"name": f"{name}-key", "key": "apiKey"}},
                },
            },
        }
    )
    return (ns, name), time.monotonic(), llmc


def _change_steadily(
    keys: list[tuple[str, str]], n: int, plan: Plan, change: Callable[[tuple[str, str]], None]
) -> dict[tuple[str, str], float]:
    """Change an evenly spread sample of the tenants at ``plan.change_rate`` per second:
    tenant -> when its change was sent."""
    m = plan.changes.get(n, min(50, n))
    changed: dict[tuple[str, str], float] = {}
    for k in keys[:: max(1, n // m)][:m]:
        t = time.monotonic()
        change(k)
        changed[k] = t
        time.sleep(max(0.0, 1.0 / plan.change_rate - (time.monotonic() - t)))
    return changed


def _operator(cp: controlplane.ControlPlane, plan: Plan, logs: Path, index: int = 0) -> Service:
    """Operator replica ``index`` (its log: ``operator.log``, ``operator-1.log``, ...)."""
    exe = Path(sys.executable).with_name("byollm-operator")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KUBECONFIG": str(cp.operator_kubeconfig),
        "BYOLLM_NAMESPACE": OPERATOR_NS,
        "BYOLLM_RESYNC_PERIOD": str(plan.resync_s),
        "BYOLLM_CREDENTIALS_PROBE_ENABLED": "false",
        "BYOLLM_ROUTER_IMAGE": "byollm/router:bench",
        "PYTHONWARNINGS": "ignore",
    }
    if plan.replicas > 1:
        env["BYOLLM_SHARDS"] = str(plan.replicas)
    if "BENCH_OPERATOR_PYTHONPATH" in os.environ:  # experiments with a patched operator copy
        env["PYTHONPATH"] = os.environ["BENCH_OPERATOR_PYTHONPATH"]
    env.update({k: v for k, v in os.environ.items() if k.startswith("EXP_")})
    log = logs / ("operator.log" if index == 0 else f"operator-{index}.log")
    svc = Service(f"operator-{index}", [str(exe)], log, env=env).start()
    poll("operator started", lambda: "operator started" in svc.tail(100_000), 240, 0.2)
    spy = os.environ.get("BENCH_PY_SPY")  # path to py-spy: sample the operator (analysis)
    if spy:
        out = logs / "operator-py-spy.txt"
        argv = [spy, "record", "-p", str(svc.pid), "-f", "raw", "-o", str(out), "-r", "50"]
        Service("py-spy", [*argv, "--threads"], logs / "py-spy.log").start()
    return svc


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


@contextlib.contextmanager
def _cluster(
    n: int, plan: Plan, state: Path
) -> Iterator[tuple[controlplane.ControlPlane, Kube, Watch, dict[str, Any]]]:
    """A fresh control plane with the CRD, the operator's RBAC, the tenants' namespaces and
    the benchmark's watch; stopped (and its state kept for reading) on the way out."""
    if state.exists():
        shutil.rmtree(state)
    t_cp = time.monotonic()
    cp = controlplane.start(state_dir=state, nodes=plan.nodes)
    res: dict[str, Any] = {"n": n, "control_plane_start_s": round(time.monotonic() - t_cp, 1)}
    watch: Watch | None = None
    try:
        api_client = kconfig.new_client_from_config(config_file=str(cp.kubeconfig))
        api_client.configuration.connection_pool_maxsize = 16
        kube = Kube(api_client, FIELD_MANAGER)
        _install(kube)
        for k in range(0, n, PER_NAMESPACE):
            ns = _tenant(k)[0]
            ns_body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            kube.request("POST", "/api/v1/namespaces", body=ns_body)
        watch = Watch(cp).start()
        yield cp, kube, watch, res
    finally:
        if watch is not None:
            watch.stop()
        cp.stop()


def run_size(n: int, plan: Plan, out_dir: Path) -> dict[str, Any]:
    with _cluster(n, plan, out_dir / f"cp-{n}") as (cp, kube, watch, res):
        op: Service | None = None
        others: list[Service] = []  # replicas 1.. (figures of RSS and CPU are replica 0's)
        try:
            audit = Audit(cp.log_dir / "audit.log")
            op = _operator(cp, plan, out_dir)
            others = [_operator(cp, plan, out_dir, i) for i in range(1, plan.replicas)]
            res["replicas"] = plan.replicas
            proc = psutil.Process(op.pid)
            time.sleep(1.0)  # the operator's initial listings
            with PeakRss(op.pid, 0.5) as rss:
                # 1. create N tenants
                a0, cpu0, t0 = audit.offset(), proc.cpu_times(), time.monotonic()
                with ThreadPoolExecutor(8) as pool:
                    created = {
                        k: t for k, t, _ in pool.map(lambda i: _create_tenant(kube, i), range(n))
                    }
                res["create_submit_s"] = round(time.monotonic() - t0, 2)
                keys = list(created)

                def first_ready(k: tuple[str, str]) -> float | None:
                    """Ready at generation 1, or at 2 when a change came before that."""
                    return watch.ready.get((*k, 1)) or watch.ready.get((*k, 2))

                def all_ready() -> bool:
                    with watch.lock:
                        return all(first_ready(k) is not None for k in keys)

                def all_synced() -> bool:
                    with watch.lock:
                        return all((*k, 1) in watch.synced for k in keys)

                def creation_results() -> None:
                    t_ready = max(first_ready(k) or 0.0 for k in keys)
                    cpu1 = proc.cpu_times()
                    res["all_ready_s"] = round(t_ready - t0, 2)
                    with watch.lock:
                        synced = [watch.synced.get((*k, 1)) for k in created]
                        res["create_to_synced_s"] = _stats(
                            [s - t for s, t in zip(synced, created.values(), strict=True) if s]
                        )
                        to_ready = sorted((first_ready(k) or 0.0) - t for k, t in created.items())
                        res["create_to_ready_s"] = _stats(to_ready)
                        res["create_to_ready_raw"] = [round(x, 3) for x in to_ready]
                    res["create_cpu_s"] = round(
                        (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2
                    )

                res["change_when"] = plan.change_when
                if plan.change_when == "ready":
                    poll(f"{n} LLMConfigs Ready", all_ready, plan.ready_timeout_s, 0.2)
                    creation_results()
                    time.sleep(2.0)  # let trailing child events settle before counting
                    create_audit = audit.count(a0)
                    res["create_writes"] = create_audit
                    res["writes_per_object"] = round(create_audit["writes"] / n, 2)
                else:  # "synced": changes race the rollouts and status echoes of the burst
                    poll(f"{n} LLMConfigs reconciled", all_synced, plan.ready_timeout_s, 0.2)
                    res["all_synced_s"] = round(time.monotonic() - t0, 2)

                # 2. provider changes at a steady rate
                def change(k: tuple[str, str]) -> None:
                    kube.merge_patch(
                        path(api.API_VERSION, api.KIND, *k),
                        {"spec": {"provider": {"defaultModel": CHANGED_MODEL}}},
                    )

                changed = _change_steadily(keys, n, plan, change)

                def new_rs(k: tuple[str, str]) -> float | None:
                    return watch.new_rs(k, changed[k])

                def rolled() -> bool:
                    with watch.lock:
                        return all(
                            new_rs(k) is not None
                            and ((*k, 2) in watch.ready or not plan.wait_ready)
                            for k in changed
                        )

                poll("changes rolled out", rolled, plan.ready_timeout_s, 0.2)
                if plan.change_when != "ready" and not plan.wait_ready:
                    with watch.lock:  # reconciled = SecretSynced at the object's generation
                        done = [
                            watch.synced.get((*k, 2 if k in changed else 1)) or 0.0 for k in keys
                        ]
                        res["ready_count"] = sum(1 for k in keys if first_ready(k) is not None)
                    res["all_reconciled_s"] = round(max(done) - t0, 2)
                    res["create_to_synced_s"] = _stats(
                        [s - t for s, t in zip(done, created.values(), strict=True) if s]
                    )
                    res["create_cpu_s"] = round(
                        sum(proc.cpu_times()[:2]) - (cpu0.user + cpu0.system), 2
                    )
                    create_audit = audit.count(a0)
                    res["create_writes"] = create_audit
                    res["writes_per_object"] = round(create_audit["writes"] / n, 2)
                elif plan.change_when != "ready":
                    poll(f"{n} LLMConfigs Ready", all_ready, plan.ready_timeout_s, 0.2)
                    creation_results()
                    time.sleep(2.0)
                    create_audit = audit.count(a0)  # creation and the changes together
                    res["create_writes"] = create_audit
                    res["writes_per_object"] = round(create_audit["writes"] / n, 2)

                def dep_updated(k: tuple[str, str]) -> float | None:
                    seen = watch.dep_hash.get((k[0], builders.router_name(k[1])), [])
                    later = [ts for ts, _ in seen[1:] if ts >= changed[k]]
                    return later[0] if later else None

                with watch.lock:
                    res["change_to_deployment_s"] = _stats(
                        [d - t for k, t in changed.items() if (d := dep_updated(k)) is not None]
                    )
                    res["change_to_new_rs_s"] = _stats(
                        [new_rs(k) - t for k, t in changed.items()]  # type: ignore[operator]
                    )
                    res["change_to_ready_s"] = _stats(
                        [
                            watch.ready[(*k, 2)] - t
                            for k, t in changed.items()
                            if (*k, 2) in watch.ready
                        ]
                    )

                # 3. idle: at least one full resync pass, zero writes expected
                time.sleep(3.0)
                a1, cpu_i0, t_i0 = audit.offset(), proc.cpu_times(), time.monotonic()
                # Two resync periods plus time for a pass (~50 objects/s): at least one full
                # pass. Reads are not in the audit log; dry-run applies are, but the operator
                # skips them for children unchanged since it last verified them.
                log0 = len(op.tail(10**9))
                window_s = 2 * plan.resync_s + n / 50
                time.sleep(window_s)
                window = time.monotonic() - t_i0
                cpu_i1 = proc.cpu_times()
                idle = audit.count(a1)
                idle["window_s"] = round(window, 1)
                idle["resync_period_s"] = plan.resync_s
                passes = re.findall(
                    r"resync pass: (\d+) LLMConfigs in ([\d.]+)s", op.tail(10**9)[log0:]
                )
                res["load_avg"] = list(os.getloadavg())
                with watch.lock:
                    res["ready_at_end"] = sum(
                        1 for k in keys if (*k, 1) in watch.ready or (*k, 2) in watch.ready
                    )
                idle["resync_passes"] = len(passes)  # logged by the operator per pass
                idle["resync_pass_s"] = max((float(t) for _, t in passes), default=None)
                idle["lease_writes_per_min"] = round(idle["lease_writes"] / window * 60, 1)
                idle["cpu_pct"] = round(
                    100 * ((cpu_i1.user + cpu_i1.system) - (cpu_i0.user + cpu_i0.system)) / window,
                    1,
                )
                res["idle"] = idle
                res["rss_end_mb"] = round(proc.memory_info().rss / 2**20, 1)
            res["rss_peak_mb"] = round(rss.peak_mb, 1)
            res["operator_log_errors"] = sum(
                1 for line in op.tail(10**8).splitlines() if " ERROR " in line
            )
        finally:
            for svc in [*others, *([op] if op is not None else [])]:
                svc.stop()
    return res


def _owner(llmc: dict[str, Any]) -> builders.Owner:
    meta = llmc["metadata"]
    return builders.Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def _children(
    llmc: dict[str, Any], api_key: str, token: str, settings: Settings
) -> builders.Children:
    spec = LLMConfigSpec.model_validate(llmc["spec"])
    return builders.build(_owner(llmc), spec, api_key, settings, token)


def run_floor(n: int, plan: Plan, out_dir: Path) -> dict[str, Any]:
    """The same tenants and changes with no operator: the harness writes each tenant's
    children itself right after creating it, one apply each (no reads, no dry-run
    comparison, no status, no Events), and makes each provider change as two applies
    (config Secret, Deployment). What is left is the API server's, the controller
    manager's, the scheduler's and kwok's work for N routers on this machine: the floor
    under any operator's all-Ready and change figures, measured like the Go proxy is for
    the router."""
    settings = Settings(router_image="byollm/router:bench", namespace=OPERATOR_NS)
    with _cluster(n, plan, out_dir / f"cp-floor-{n}") as (_, kube, watch, res):
        made: dict[tuple[str, str], tuple[dict[str, Any], str, str]] = {}

        def tenant(i: int) -> tuple[tuple[str, str], float]:
            k, t, llmc = _create_tenant(kube, i)
            key, token = _api_key(i), builders.new_router_token()
            kube.create(builders.token_secret(_owner(llmc), token))
            for manifest in _children(llmc, key, token, settings).in_apply_order():
                kube.apply(manifest)
            made[k] = (llmc, key, token)
            return k, t

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            created = dict(pool.map(tenant, range(n)))
        res["create_submit_s"] = round(time.monotonic() - t0, 2)
        keys = list(created)
        routers = [(ns, builders.router_name(name)) for ns, name in keys]

        def all_available() -> bool:
            with watch.lock:
                return all(r in watch.dep_available for r in routers)

        if plan.change_when == "ready":
            poll(f"{n} routers available", all_available, plan.ready_timeout_s, 0.2)

        def change(k: tuple[str, str]) -> None:
            llmc, key, token = made[k]
            llmc = {**llmc, "spec": {**llmc["spec"]}}
            llmc["spec"]["provider"] = {**llmc["spec"]["provider"], "defaultModel": CHANGED_MODEL}
            children = _children(llmc, key, token, settings)
            kube.apply(children.llm_secret)
            kube.apply(children.deployment)

        changed = _change_steadily(keys, n, plan, change)
        poll(f"{n} routers available", all_available, plan.ready_timeout_s, 0.2)

        def rolled() -> bool:
            with watch.lock:
                return all(watch.new_rs(k, t) is not None for k, t in changed.items())

        poll("changes rolled out", rolled, plan.ready_timeout_s, 0.2)
        with watch.lock:
            res["all_ready_s"] = round(max(watch.dep_available[r] for r in routers) - t0, 2)
            to_ready = [
                watch.dep_available[r] - created[k] for k, r in zip(keys, routers, strict=True)
            ]
            res["create_to_ready_s"] = _stats(to_ready)
            res["change_to_new_rs_s"] = _stats(
                [watch.new_rs(k, t) - t for k, t in changed.items()]  # type: ignore[operator]
            )
        res["change_when"] = plan.change_when
        res["load_avg"] = list(os.getloadavg())
    return res


def _line(r: dict[str, Any]) -> str:
    def st(key: str) -> str:
        v = r.get(key) or {}
        return f"p50 {v.get('p50', float('nan')):.2f}s p99 {v.get('p99', float('nan')):.2f}s"

    if "idle" not in r:  # the floor: no operator
        return (
            f"floor N={r['n']}: all Ready {r['all_ready_s']}s (submit {r['create_submit_s']}s) | "
            f"create->Ready {st('create_to_ready_s')} | change->RS {st('change_to_new_rs_s')} | "
            f"load {r.get('load_avg')}"
        )
    idle = r["idle"]
    return (
        f"N={r['n']}: all Ready {r.get('all_ready_s')}s, all reconciled "
        f"{r.get('all_reconciled_s', r.get('all_synced_s'))}s (submit {r['create_submit_s']}s, "
        f"Ready at end {r.get('ready_at_end')}) | create->synced {st('create_to_synced_s')} | "
        f"create->Ready {st('create_to_ready_s')} | change->Deployment "
        f"{st('change_to_deployment_s')} | change->RS {st('change_to_new_rs_s')} | "
        f"writes/obj {r['writes_per_object']} | idle writes {idle['writes']} "
        f"({idle['window_s']}s, {idle['resync_passes']} resync passes, max pass "
        f"{idle['resync_pass_s']}s, leases {idle['lease_writes_per_min']}/min, "
        f"cpu {idle['cpu_pct']}%) | rss peak {r['rss_peak_mb']}MB | create cpu "
        f"{r['create_cpu_s']}s | load {r.get('load_avg')}"
        + (f" | {r['replicas']} replicas, sharded" if r.get("replicas", 1) > 1 else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="tiny run for CI (5 objects)")
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "operator.json")
    parser.add_argument(
        "--change-when",
        choices=("ready", "synced"),
        default="synced",
        help="issue the provider changes once all are Ready, or once all are reconciled "
        "(while the rollouts and status echoes of the creation burst still settle)",
    )
    parser.add_argument("--nodes", type=int, default=2, help="kwok nodes")
    parser.add_argument(
        "--no-wait-ready",
        action="store_true",
        help="with --change-when synced: measure up to every LLMConfig reconciled, count "
        "the Ready ones at that point instead of waiting for all pods",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run each size with no operator (the harness writes the children itself): "
        "the cluster's own floor under the all-Ready and change figures",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="operator replicas, the tenants sharded across them (figures of RSS and CPU are "
        "the first replica's)",
    )
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    plan = Plan.short() if args.short else Plan.full(sizes)
    plan.change_when = args.change_when
    plan.nodes = args.nodes
    plan.wait_ready = not args.no_wait_ready
    plan.replicas = args.replicas
    out: dict[str, Any] = {"mode": "short" if args.short else "full", "sizes": []}
    out["machine_before"] = machine_load()
    t0 = time.monotonic()
    for n in plan.sizes:
        try:
            r = run_size(n, plan, args.out.parent)
        except controlplane.ControlPlaneUnavailable as e:
            out["unavailable"] = str(e)[:300]
            print(f"control plane unavailable: {e}", file=sys.stderr)
            break
        print(_line(r), flush=True)
        out["sizes"].append(r)
        if args.floor:
            floor = run_floor(n, plan, args.out.parent)
            print(_line(floor), flush=True)
            out.setdefault("floor", []).append(floor)
    out["machine_after"] = machine_load()
    out["seconds"] = round(time.monotonic() - t0, 1)
    write_json(args.out, out)
    print(f"wrote {args.out} in {out['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
