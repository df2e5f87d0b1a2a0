"""Operator fixtures on the real control plane (tests/conftest.py).

* ``crd``: the generated CRD applied once, plus the operator's RBAC from
  ``byollm_dev.rbac`` bound to the (non-admin) user ``byollm-operator``.
* ``operator``: ``byollm-operator`` as a subprocess with that user's kubeconfig and short
  timers, logging to ``<control plane log dir>/operator-N.log``; restartable by tests.
* ``stub_provider``: the OpenAI-compatible stub on 127.0.0.1 for CredentialsValid.
* ``kube``: helpers (admin ``Kube`` raw client, waits) used by every operator test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    OperatorProcess,
    crd_manifest,
    operator_install,
    wait_crd_established,
    wait_for,
)

from byollm import api
from byollm.kube import Kube
from byollm_dev.controlplane import free_port, stop_process
from byollm_operator.builders import FIELD_MANAGER

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kube(k8s_api: Any) -> Kube:
    return Kube(k8s_api, FIELD_MANAGER)


def _apply_all(kube: Kube, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        kube.apply(doc, field_manager="byollm-tests")


@pytest.fixture(scope="session")
def crd(kube: Kube) -> dict[str, Any]:
    """Install the committed CRD (== generated) and the operator's RBAC, once."""
    manifest = crd_manifest()
    _apply_all(kube, operator_install(manifest))
    wait_crd_established(kube)
    # The discovery cache of a fresh apiserver can lag the Established condition.
    wait_for(
        "LLMConfig API served",
        lambda: kube.request("GET", f"/apis/{api.GROUP}/{api.VERSION}/{api.PLURAL}") is not None,
        timeout=30,
    )
    return manifest


@pytest.fixture(scope="session")
def operator(control_plane: Any, crd: dict[str, Any]) -> Iterator[OperatorProcess]:
    """The operator, running for the whole session (tests that stop it restart it)."""
    op = OperatorProcess(Path(control_plane.operator_kubeconfig), Path(control_plane.log_dir))
    op.start()
    op.wait_leading()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def running_operator(operator: OperatorProcess) -> OperatorProcess:
    """The session operator, restarted first if an earlier test left it stopped."""
    if operator.proc is None or operator.proc.poll() is not None:
        operator.start()
        operator.wait_leading()
    return operator


@pytest.fixture(scope="session")
def stub_provider(control_plane: Any) -> Iterator[dict[str, Any]]:
    """The OpenAI-compatible stub on 127.0.0.1, accepting exactly one key."""
    port = free_port()
    key = "sk-stub-valid-0123456789"
    logf = (Path(control_plane.log_dir) / "stub-provider.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "stubs" / "provider.py"),
            "--port",
            str(port),
            "--api-key",
            key,
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for("stub provider", up, timeout=15)
    try:
        yield {"port": port, "key": key}
    finally:
        stop_process(proc)
        logf.close()
