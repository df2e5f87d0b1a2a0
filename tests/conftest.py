"""Session fixtures: a real Kubernetes control plane on 127.0.0.1, a namespace per test.

The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) is
built once from Go modules and cached (see ``hack/controlplane/build.sh``). Alternatives:
``KUBEBUILDER_ASSETS`` (a folder with all five binaries) or ``BYOLLM_TEST_KUBECONFIG`` (an
existing cluster such as kind; tests needing etcd or the operator identity skip there).
If none can be had, every test that needs a cluster is skipped with one loud line.
"""

from __future__ import annotations

import atexit
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stubs.figures import write_alarm

from byollm_dev import controlplane

_STATE: dict[str, Any] = {"unavailable": None, "cp": None}


@dataclass
class ExternalCluster:
    """A cluster the user brought (``BYOLLM_TEST_KUBECONFIG``): no etcd, one identity."""

    kubeconfig: Path
    log_dir: Path

    @property
    def operator_kubeconfig(self) -> Path:
        return self.kubeconfig

    def etcd_get(self, key: str) -> bytes:
        pytest.skip("raw etcd reads need the local control plane, not BYOLLM_TEST_KUBECONFIG")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running control plane (session-wide); skips loudly if it cannot be had."""
    if _STATE["unavailable"]:
        pytest.skip(_STATE["unavailable"])
    external = os.environ.get("BYOLLM_TEST_KUBECONFIG")
    if external:
        yield ExternalCluster(Path(external), tmp_path_factory.mktemp("logs"))
        return
    try:
        cp = controlplane.start(
            state_dir=tmp_path_factory.mktemp("controlplane"), progress=sys.__stderr__
        )
    except controlplane.ControlPlaneUnavailable as exc:
        _STATE["unavailable"] = f"CONTROL PLANE UNAVAILABLE, cluster tests skipped: {exc}"
        pytest.skip(_STATE["unavailable"])
    _STATE["cp"] = cp
    atexit.register(cp.stop)  # belt and braces; children also die with this process
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def k8s_api(control_plane: Any) -> Iterator[Any]:
    """An admin ``kubernetes.client.ApiClient``."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(k8s_api: Any) -> Iterator[str]:
    """A fresh namespace enforcing the restricted Pod Security Standard; deleted after."""
    from kubernetes import client

    name = f"t-{secrets.token_hex(4)}"
    core = client.CoreV1Api(k8s_api)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={
                    "byollm.io/test": "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            )
        )
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Point a failing cluster test at the component logs."""
    outcome = yield
    report = outcome.get_result()
    cp = _STATE["cp"]
    if report.failed and cp is not None and "control_plane" in getattr(item, "fixturenames", ()):
        report.sections.append(("control plane logs", str(cp.log_dir)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STATE["unavailable"]:
        write_alarm(terminalreporter, _STATE["unavailable"])
    cp = _STATE["cp"]
    if cp is not None and cp.build is not None:
        build = f"built in {cp.build.seconds:.0f}s (cold)" if cp.build.built else "cached, no build"
        terminalreporter.write_line(
            f"control plane: binaries {build}; API server healthy, kwok nodes Ready "
            f"{cp.startup_seconds:.1f}s after start; logs in {cp.log_dir}"
        )
