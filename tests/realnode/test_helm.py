"""The operator from its image, installed with the Helm chart as a user would."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import realnode_helpers as h
from operator_helpers import OPERATOR_NS, create_llmc, wait_for, wait_ready

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "byollm-helm"


def _helm() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / "tools.sh"), "helm"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"helm cannot be built: {proc.stderr[-1000:]}")
    return proc.stdout.strip().splitlines()[-1]


def test_helm_install_operator_pod_runs_tenant_router(platform) -> None:
    """`helm install` with the images built here -> the operator pod is Ready from its
    image (it reaches the API server through the kubernetes Service); an LLMConfig ->
    the router pod is Ready from its image, and a tenant's agent chats through it."""
    helm = _helm()
    node = platform.node
    op_repo, op_tag = node.image("operator").rsplit(":", 1)
    rt_repo, rt_tag = node.image("router").rsplit(":", 1)
    values = {
        "fullnameOverride": RELEASE,
        "replicaCount": 1,
        "image": {"repository": op_repo, "tag": op_tag, "pullPolicy": "Never"},
        "router": {"image": {"repository": rt_repo, "tag": rt_tag, "pullPolicy": "Never"}},
        "upstreamAllowlist": ["*.svc"],
        "upstreamNamespaces": [h.PROVIDER_NS],
        "resyncPeriod": 30,
    }
    values_file = Path(node.log_dir) / "helm-values.json"
    values_file.write_text(json.dumps(values))
    kubeconfig = str(node.cp.kubeconfig)
    platform.operator.stop()  # one operator at a time
    try:
        t0 = time.monotonic()
        inst = subprocess.run(
            [
                helm,
                "install",
                RELEASE,
                str(ROOT / "charts" / "byollm"),
                "-n",
                OPERATOR_NS,
                "-f",
                str(values_file),
                "--kubeconfig",
                kubeconfig,
                "--wait",
                "--timeout",
                "90s",
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if inst.returncode != 0:
            pods = platform.kube.list(f"/api/v1/namespaces/{OPERATOR_NS}/pods")
            status = json.dumps([(p["metadata"]["name"], p.get("status")) for p in pods])[:4000]
            logs = [
                f.read_text()[-1500:]
                for f in Path("/var/lib/byollm-realnode/pod-logs").glob(
                    f"{OPERATOR_NS}_{RELEASE}-*/operator/*.log"
                )
            ]
            pytest.fail(f"helm install: {inst.stderr}\nlogs: {logs}\npods: {status}")
        op_pods = platform.kube.list(
            f"/api/v1/namespaces/{OPERATOR_NS}/pods?labelSelector=app.kubernetes.io%2Fname%3D{RELEASE}"
        )
        assert op_pods, "no operator pod"
        assert op_pods[0]["spec"]["containers"][0]["image"] == node.image("operator")
        h.report(f"realnode: helm install -> operator pod Ready {time.monotonic() - t0:.1f}s")

        ns = platform.tenant()
        platform.key_secret(ns, "key-stub-a", h.STUB_KEYS["stub-a"])
        t1 = time.monotonic()
        create_llmc(platform.kube, ns, "acme", platform.byo_spec("stub-a", "m-helm", "key-stub-a"))
        pod = platform.ready_router_pod(ns)
        wait_ready(platform.kube, ns, "acme", timeout=120)
        h.report(
            f"realnode: (helm operator) LLMConfig -> router pod Ready {time.monotonic() - t1:.1f}s"
        )
        assert pod["spec"]["containers"][0]["image"] == node.image("router")
        got = platform.chat_from_client(ns)
        assert got["fp"] == "fp_stub-a"
        assert got["model"] == "m-helm"
        assert got["stream"] == "echo: stream please"
    finally:
        subprocess.run(
            [
                helm,
                "uninstall",
                RELEASE,
                "-n",
                OPERATOR_NS,
                "--kubeconfig",
                kubeconfig,
                "--wait",
                "--timeout",
                "60s",
            ],
            check=False,
            capture_output=True,
        )
        wait_for(
            "helm operator pod gone",
            lambda: (
                not platform.kube.list(
                    f"/api/v1/namespaces/{OPERATOR_NS}/pods?labelSelector=app.kubernetes.io%2Fname%3D{RELEASE}"
                )
            ),
            timeout=60,
        )
        platform.operator.start()
        platform.operator.wait_leading()
