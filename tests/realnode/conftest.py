"""Real-node fixtures (marker ``realnode``): router pods from their image on a real kubelet.

* ``real_node``: a control plane of its own (no kwok nodes) plus a real node (containerd,
  runc, CNI bridge, kubelet, kube-proxy, kube-router firewall, CoreDNS), session-wide,
  torn down completely at the end (and leftovers of a crashed run cleaned at the next start).
  Needs root; when not root or a part cannot be had, every realnode test is skipped with
  one loud line saying why.
* ``platform``: the CRD and the operator's RBAC, the stand-in LiteLLM pod in
  ``byollm-system``, two stub provider pods in ``llm-provider`` (their own namespace), and
  the operator (``byollm-operator`` on the host, like the integration tests) configured
  with the router image built from deploy/docker/router.Dockerfile.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import realnode_helpers as h
from operator_helpers import (
    OPERATOR_NS,
    OperatorProcess,
    crd_manifest,
    create_llmc,
    operator_rbac,
    wait_crd_established,
    wait_for,
    wait_ready,
)
from stubs.figures import write_alarm

from byollm.kube import Kube
from byollm_dev import controlplane, realnode

_STATE: dict[str, Any] = {"unavailable": None, "node": None, "cp": None}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.realnode)
            item.add_marker(pytest.mark.timeout(900))


def _skip(reason: str) -> None:
    _STATE["unavailable"] = f"REAL NODE UNAVAILABLE, realnode tests skipped: {reason}"
    pytest.skip(_STATE["unavailable"])


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realnode.RealNode]:
    if _STATE["unavailable"]:
        pytest.skip(_STATE["unavailable"])
    if sys.platform != "linux" or os.geteuid() != 0:
        _skip("not root on Linux (containerd, kubelet and iptables need root)")
    try:
        parts = realnode.ensure_parts(progress=sys.__stderr__)
    except realnode.RealNodeUnavailable as exc:
        _skip(str(exc))
    # Not under pytest's basetemp: concurrent pytest runs on the machine rotate that away,
    # and these logs are what a failed test points at. The previous run's are removed.
    logs_root = Path(tempfile.gettempdir()) / "byollm-realnode-logs"
    shutil.rmtree(logs_root, ignore_errors=True)
    logs_root.mkdir(parents=True)
    try:
        cp = controlplane.start(
            state_dir=logs_root / "controlplane", nodes=0, progress=sys.__stderr__
        )
    except controlplane.ControlPlaneUnavailable as exc:
        _skip(f"control plane: {exc}")
    _STATE["cp"] = cp
    atexit.register(cp.stop)
    try:
        node = realnode.start(cp, cp.log_dir / "node", parts=parts)
    except realnode.RealNodeUnavailable as exc:
        cp.stop()
        _skip(str(exc))
    except BaseException:
        cp.stop()
        raise
    _STATE["node"] = node
    atexit.register(node.stop)
    try:
        yield node
    finally:
        node.stop()
        cp.stop()


@dataclass
class Platform:
    node: realnode.RealNode
    kube: Kube
    operator: OperatorProcess
    router_image: str
    stub_ips: dict[str, str]  # service name -> ClusterIP

    def tenant(self, prefix: str = "t") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        h.namespace(self.kube, name)
        return name

    def key_secret(self, ns: str, name: str, key: str) -> None:
        h.apply(
            self.kube,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"byollm.io/llm-key": "true"},
                },
                "data": {"apiKey": base64.b64encode(key.encode()).decode()},
            },
        )

    def byo_spec(self, stub: str, model: str, secret: str) -> dict[str, Any]:
        return {
            "mode": "BYO",
            "active": True,
            "provider": {
                "type": "custom",
                "baseURL": f"http://{stub}.{h.PROVIDER_NS}.svc:8080/v1",
                "defaultModel": model,
                "apiKey": {"secretKeyRef": {"name": secret, "key": "apiKey"}},
            },
            "access": {"podSelector": {"matchLabels": {"app": "agent"}}},
        }

    def byo_tenant(self, name: str = "acme", stub: str = "stub-a", model: str = "m-1") -> str:
        """A tenant namespace with a Ready BYO LLMConfig ``name`` on ``stub``."""
        ns = self.tenant()
        for s, key in h.STUB_KEYS.items():
            self.key_secret(ns, f"key-{s}", key)
        create_llmc(self.kube, ns, name, self.byo_spec(stub, model, f"key-{stub}"))
        wait_ready(self.kube, ns, name, timeout=120)
        return ns

    def router_pods(self, ns: str, name: str = "acme") -> list[dict[str, Any]]:
        return [
            p
            for p in self.kube.list(
                f"/api/v1/namespaces/{ns}/pods?labelSelector=byollm.io%2Fllmconfig%3D{name}"
            )
            if not p["metadata"].get("deletionTimestamp")
        ]

    def ready_router_pod(self, ns: str, name: str = "acme", timeout: float = 120) -> dict[str, Any]:
        def one_ready() -> dict[str, Any] | None:
            pods = self.router_pods(ns, name)
            ready = [p for p in pods if h.pod_ready(self.kube, ns, p["metadata"]["name"])]
            return ready[0] if len(ready) == 1 and len(pods) == 1 else None

        pod: dict[str, Any] = wait_for(f"{ns}/{name} router pod Ready", one_ready, timeout)
        return pod

    def stub_requests(self, stub: str) -> list[dict[str, Any]]:
        """What the stub provider pod ``stub`` received (its log, read from the host)."""
        import httpx

        resp = httpx.get(f"http://{self.stub_ips[stub]}:8080/_stub/requests", timeout=10)
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json()["requests"]
        return rows

    def pid(self, pod: dict[str, Any]) -> int:
        return self.node.container_pid(h.container_id(pod))

    def token(self, ns: str, name: str = "acme") -> str:
        return h.secret_value(self.kube, ns, f"{name}-router-token", "token")

    def router_url(self, ns: str, name: str = "acme") -> str:
        return f"http://{h.service_ip(self.kube, ns, f'{name}-router')}:8080/v1"

    def client_pod(self, ns: str, name: str = "agent", labels: dict[str, str] | None = None) -> int:
        """An idle pod (``app: agent`` unless told) in ``ns``; returns its host PID."""
        pod = h.idle_pod(self.kube, ns, name, self.node.image("pause"), labels or {"app": "agent"})
        return self.pid(pod)

    def chat_from_client(self, ns: str) -> dict[str, Any]:
        """``h.CHAT`` (the openai SDK) run in a new client pod of ``ns`` against the tenant's
        router ``acme``: the JSON line it printed."""
        client = self.client_pod(ns)
        proc = h.in_netns(client, h.CHAT.format(url=self.router_url(ns), token=self.token(ns)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        got: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return got


@pytest.fixture(scope="session")
def platform(real_node: realnode.RealNode) -> Iterator[Platform]:
    from kubernetes import config

    cp = real_node.cp
    api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
    kube = Kube(api_client, "byollm-realnode-tests")
    h.namespace(kube, OPERATOR_NS)
    h.namespace(kube, h.PROVIDER_NS)
    for doc in [crd_manifest(), *operator_rbac()]:
        h.apply(kube, doc)
    wait_crd_established(kube)
    router_image = real_node.image("router")
    for stub, key in h.STUB_KEYS.items():
        h.stub_pod(
            kube, h.PROVIDER_NS, stub, router_image, 8080, {}, ["--api-key", key, "--chunks", "3"]
        )
    h.stub_pod(kube, h.PROVIDER_NS, "stub-any", router_image, 8080, {}, [])  # any key
    h.stub_pod(
        kube,
        OPERATOR_NS,
        "litellm",
        router_image,
        4000,
        {"app.kubernetes.io/name": "litellm"},
        ["--allow-no-key", "--default-model", "platform-model"],
    )
    stub_ips = {s: h.service_ip(kube, h.PROVIDER_NS, s) for s in ("stub-a", "stub-b", "stub-any")}
    stub_ips["litellm"] = h.service_ip(kube, OPERATOR_NS, "litellm")
    op = OperatorProcess(
        Path(cp.operator_kubeconfig),
        Path(cp.log_dir),
        extra_env={
            "BYOLLM_ROUTER_IMAGE": router_image,
            "BYOLLM_ROUTER_IMAGE_PULL_POLICY": "Never",
            "BYOLLM_UPSTREAM_NAMESPACES": json.dumps([h.PROVIDER_NS]),
            # The credentials probe runs on the host: it reaches the stubs' Services
            # through the service route onto the bridge.
            "BYOLLM_PROBE_RESOLVE": json.dumps(
                {f"{s}.{h.PROVIDER_NS}.svc": ip for s, ip in stub_ips.items() if s != "litellm"}
            ),
            "BYOLLM_UPSTREAM_ALLOWLIST": "*.svc,10.96.0.0/16",
        },
    )
    op.start()
    op.wait_leading()
    try:
        yield Platform(real_node, kube, op, router_image, stub_ips)
    finally:
        op.stop()
        api_client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Point a failing real-node test at the component logs."""
    outcome = yield
    report = outcome.get_result()
    node = _STATE["node"]
    if report.failed and node is not None:
        report.sections.append(
            ("real node logs", f"{node.log_dir} (and the control plane's in {node.cp.log_dir})")
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STATE["unavailable"]:
        write_alarm(terminalreporter, _STATE["unavailable"])
    node = _STATE["node"]
    if node is not None:
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in node.timings.items())
        builds = ", ".join(f"{k} {v:.0f}s" for k, v in node.parts.build_seconds.items())
        terminalreporter.write_line(
            f"real node: up in {node.startup_seconds:.1f}s ({steps}); parts/images: {builds}; "
            f"logs in {node.log_dir}"
        )
    for line in h.REPORT:
        terminalreporter.write_line(line)
