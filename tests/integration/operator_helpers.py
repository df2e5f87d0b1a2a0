"""Helpers shared by the operator integration tests (imported by conftest and tests)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from byollm import api
from byollm.kube import Kube, KubeError, path
from byollm_dev import generate, rbac
from byollm_router.contract import LLM_KEY_LABEL


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except KubeError as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


# --- helpers used by the tests ---------------------------------------------------------------


def llmc_path(ns: str, name: str | None = None) -> str:
    return path(api.API_VERSION, api.KIND, ns, name)


def llmconfig(name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """An LLMConfig object (with ``namespace``, as ``kubectl apply`` would send it)."""
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": meta, "spec": spec}


def create_llmc(kube: Kube, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return kube.request("POST", llmc_path(ns), body=llmconfig(name, spec))


def patch_spec(kube: Kube, ns: str, name: str, spec_patch: dict[str, Any]) -> dict[str, Any]:
    return kube.merge_patch(llmc_path(ns, name), {"spec": spec_patch})


def key_secret(kube: Kube, ns: str, name: str, key: str, data_key: str = "apiKey") -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": {LLM_KEY_LABEL: "true"}},
        "data": {data_key: base64.b64encode(key.encode()).decode()},
    }
    kube.request(
        "PATCH",
        path("v1", "Secret", ns, name),
        body=body,
        query=[("fieldManager", "tenant"), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def wait_ready(kube: Kube, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    """Wait for Ready=True at the current generation; returns the LLMConfig."""

    def ready() -> dict[str, Any] | None:
        obj = kube.get(llmc_path(ns, name))
        if obj is None:
            return None
        gen = obj["metadata"]["generation"]
        st = obj.get("status") or {}
        c = condition(obj, "Ready")
        ok = st.get("observedGeneration") == gen and c.get("status") == "True"
        return obj if ok and c.get("observedGeneration") == gen else None

    result: dict[str, Any] = wait_for(f"{ns}/{name} Ready", ready, timeout=timeout)
    return result


def child_paths(ns: str, name: str) -> dict[str, str]:
    """REST paths of every child of LLMConfig ``name``."""
    return {
        "llm-secret": path("v1", "Secret", ns, f"{name}-llm"),
        "token-secret": path("v1", "Secret", ns, f"{name}-router-token"),
        "deployment": path("apps/v1", "Deployment", ns, f"{name}-router"),
        "service": path("v1", "Service", ns, f"{name}-router"),
        "networkpolicy": path("networking.k8s.io/v1", "NetworkPolicy", ns, f"{name}-router"),
    }


def secret_data(kube: Kube, ns: str, name: str) -> dict[str, str]:
    obj = kube.get(path("v1", "Secret", ns, name)) or {}
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def replicasets(kube: Kube, ns: str, name: str) -> dict[str, dict[str, Any]]:
    """The router's ReplicaSets: name -> {hash: config-hash, replicas: spec.replicas}."""
    items = kube.list(
        f"/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=byollm.io%2Fllmconfig%3D{name}"
    )
    return {
        rs["metadata"]["name"]: {
            "hash": rs["spec"]["template"]["metadata"]["annotations"]["byollm.io/config-hash"],
            "replicas": rs["spec"].get("replicas", 0),
        }
        for rs in items
    }


def pods(kube: Kube, ns: str, name: str) -> list[dict[str, Any]]:
    return kube.list(f"/api/v1/namespaces/{ns}/pods?labelSelector=byollm.io%2Fllmconfig%3D{name}")


def wait_rolled(kube: Kube, ns: str, name: str, cfg_hash: str, timeout: float = 90) -> float:
    """Wait until every router pod runs ``cfg_hash`` (old pods gone); returns seconds."""
    start = time.monotonic()

    def rolled() -> bool:
        ps = pods(kube, ns, name)
        return bool(ps) and all(
            p["metadata"]["annotations"].get("byollm.io/config-hash") == cfg_hash
            and not p["metadata"].get("deletionTimestamp")
            for p in ps
        )

    wait_for(f"{ns}/{name} pods at config {cfg_hash[:12]}", rolled, timeout=timeout)
    return time.monotonic() - start


ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NS = "byollm-system"
# Every host the operator's credentials probe resolves goes to 127.0.0.1 (no DNS, no
# traffic off this machine); only the stub's port answers there.
TEST_ALLOWLIST = "127.0.0.1,*.svc"


def crd_manifest() -> dict[str, Any]:
    """The committed LLMConfig CRD (a unit test holds it equal to the generated one)."""
    crd: dict[str, Any] = yaml.safe_load((ROOT / generate.CRD_PATHS[0]).read_text())
    return crd


def operator_rbac() -> list[dict[str, Any]]:
    """The operator's RBAC, bound to the user ``byollm-operator`` the test operators run as."""
    subject = {"kind": "User", "name": "byollm-operator", "apiGroup": "rbac.authorization.k8s.io"}
    return rbac.manifests(namespace=OPERATOR_NS, subject=subject)


def operator_install(crd: dict[str, Any]) -> list[dict[str, Any]]:
    """What a cluster needs before the operator runs: its Namespace, the CRD and its RBAC."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NS}}
    return [namespace, crd, *operator_rbac()]


def wait_crd_established(kube: Kube) -> None:
    """Until the API server reports the LLMConfig CRD Established (30 s at most)."""

    def established() -> bool:
        got = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{api.CRD_NAME}")
        conds = ((got or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for("CRD Established", established, timeout=30)


@dataclass
class OperatorProcess:
    """One ``byollm-operator`` subprocess; tests may stop/start it (restart, failover)."""

    kubeconfig: Path
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_path: Path | None = None
    _logf: Any = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BYOLLM_", "KUBERNETES_"))}
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "BYOLLM_NAMESPACE": OPERATOR_NS,
                "BYOLLM_RESYNC_PERIOD": os.environ.get("BYOLLM_TEST_RESYNC_PERIOD", "10"),
                "BYOLLM_UPSTREAM_ALLOWLIST": TEST_ALLOWLIST,
                "BYOLLM_PROBE_RESOLVE": '{"*": "127.0.0.1"}',
                "BYOLLM_CREDENTIALS_PROBE_TIMEOUT": "3",
                "BYOLLM_CREDENTIALS_PROBE_PERIOD": "3600",
                "BYOLLM_MANAGED_URL": "http://litellm.byollm-system.svc:4000/v1",
                "BYOLLM_ROUTER_IMAGE": "byollm/router:test",
                "BYOLLM_LEASE_DURATION": "4",
                "BYOLLM_LEASE_RENEW_DEADLINE": "3",
                "BYOLLM_LEASE_RETRY_PERIOD": "1",
                "PYTHONWARNINGS": "ignore",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        self.log_path = self.log_dir / f"operator-{id(self) % 10000}-{self.starts}.log"
        exe = Path(sys.executable).with_name("byollm-operator")
        if self._logf is not None:
            self._logf.close()
        self._logf = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(exe)],
            env=self.env(),
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            if self._logf is not None:  # it exited by itself (crash tests)
                self._logf.close()
                self._logf = None
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            if self._logf is not None:
                self._logf.close()
                self._logf = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def wait_leading(self, timeout: float = 30) -> None:
        def leading() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"operator exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            return "acquired the leader lease" in self.log() and "operator started" in self.log()

        wait_for("operator to lead and start", leading, timeout=timeout)
