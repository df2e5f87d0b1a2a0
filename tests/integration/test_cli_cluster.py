"""``byollm seal`` / ``byollm status`` against the real API server with the operator running.

The GitOps path end to end: seal a key with the public key the operator published (read
through the kubeconfig), commit-able LLMConfig with ``apiKey.sealed``, the operator opens
it, and ``byollm status`` shows the tenant Ready with only the key's first 8 characters.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import llmconfig

from byollm.kube import Kube

pytestmark = pytest.mark.cluster
BYOLLM = str(Path(sys.executable).with_name("byollm"))


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([BYOLLM, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_seal_then_status(
    control_plane: Any,
    kube: Kube,
    namespace: str,
    running_operator: Any,
    stub_provider: dict[str, Any],
) -> None:
    kc = str(control_plane.kubeconfig)
    key = stub_provider["key"]
    res = run("seal", "-n", namespace, "--name", "gitops", "--kubeconfig", kc, stdin=key)
    assert res.returncode == 0, res.stderr
    sealed = res.stdout.strip()
    assert key not in sealed

    res = run("status", "-n", namespace, "--kubeconfig", kc)
    assert res.returncode == 3  # nothing there yet
    assert "No LLMConfigs found" in res.stderr

    kube.apply(
        llmconfig(
            "gitops",
            {
                "mode": "BYO",
                "provider": {
                    "type": "custom",
                    "baseURL": f"http://stub.{namespace}.svc:{stub_provider['port']}/v1",
                    "defaultModel": "stub-model",
                    "apiKey": {"sealed": sealed},
                },
            },
            namespace,
        )
    )
    deadline = time.monotonic() + 90
    while True:
        res = run("status", "-n", namespace, "--kubeconfig", kc, "-o", "wide")
        if res.returncode == 0:
            break
        assert res.returncode == 3, res.stderr
        assert time.monotonic() < deadline, res.stdout
        time.sleep(1)
    header, row = res.stdout.splitlines()
    assert header.split()[:8] == [
        "NAMESPACE",
        "NAME",
        "MODE",
        "SERVING",
        "PROVIDER",
        "MODEL",
        "KEY",
        "READY",
    ]
    assert row.split()[:8] == [
        namespace,
        "gitops",
        "BYO",
        "BYO",
        "custom",
        "stub-model",
        key[:8],
        "True",
    ]
    assert key not in res.stdout
    assert f"http://gitops-router.{namespace}.svc:8080/v1" in res.stdout

    # -A lists every namespace (other tests' LLMConfigs may be there, Ready or not).
    res = run("status", "-A", "--kubeconfig", kc)
    assert res.returncode in (0, 3)
    assert any(line.split()[:2] == [namespace, "gitops"] for line in res.stdout.splitlines())
