"""Fixtures of the fault suite: its own control plane (the session one other tests share is
never stopped or killed), the CRD and the operator's RBAC on it, and the fault proxy.

Sizes come from the environment so one suite serves CI and the full run
(``hack/faults.sh``): ``BYOLLM_FAULTS_N`` LLMConfigs (8), ``BYOLLM_FAULTS_OUTAGE`` seconds
of API server / etcd outage (5), ``BYOLLM_FAULTS_WINDOW`` seconds of proxy faults (5).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from faultlib import Sizes, wait
from faultproxy import FaultProxy
from operator_helpers import crd_manifest, operator_install

from byollm import api
from byollm.kube import Kube
from byollm_dev import controlplane
from byollm_operator.builders import FIELD_MANAGER


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    n = int(os.environ.get("BYOLLM_FAULTS_N", "8"))
    return Sizes(
        n=n,
        outage=float(os.environ.get("BYOLLM_FAULTS_OUTAGE", "5")),
        window=float(os.environ.get("BYOLLM_FAULTS_WINDOW", "5")),
        full=n >= 50,
    )


@pytest.fixture(scope="module")
def fault_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    """A control plane of the fault suite's own, stopped at the end of the module."""
    if os.environ.get("BYOLLM_TEST_KUBECONFIG"):
        pytest.skip("the fault suite stops and kills control plane processes: local only")
    try:
        cp = controlplane.start(
            state_dir=tmp_path_factory.mktemp("faults-controlplane"), progress=sys.__stderr__
        )
    except controlplane.ControlPlaneUnavailable as exc:
        pytest.skip(f"CONTROL PLANE UNAVAILABLE, fault tests skipped: {exc}")
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def fault_kube(fault_cp: controlplane.ControlPlane) -> Iterator[Kube]:
    """Admin client on the fault control plane, with the CRD and RBAC installed."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(fault_cp.kubeconfig))
    kube = Kube(client, FIELD_MANAGER)
    for doc in operator_install(crd_manifest()):
        kube.apply(doc, field_manager="byollm-tests")
    wait(  # a fresh API server answers plain-text 404s until the CRD is served
        "LLMConfig API served",
        lambda: kube.request("GET", f"/apis/{api.GROUP}/{api.VERSION}/{api.PLURAL}") is not None,
        timeout=60,
    )
    try:
        yield kube
    finally:
        client.close()


@pytest.fixture
def proxy(fault_cp: controlplane.ControlPlane, tmp_path: Path) -> Iterator[FaultProxy]:
    """The fault proxy in front of the fault control plane's API server; ``.kubeconfig``
    is the operator identity's kubeconfig pointed at it."""
    p = FaultProxy(fault_cp.server, fault_cp.ca_file).start()
    cfg = yaml.safe_load(fault_cp.operator_kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    cluster["server"] = p.url
    cluster.pop("certificate-authority-data", None)
    kc = tmp_path / "operator-via-proxy.kubeconfig"
    kc.write_text(yaml.safe_dump(cfg))
    p.kubeconfig = kc
    try:
        yield p
    finally:
        p.stop()
