"""Behaviour under change and failure: drift repair, garbage collection, operator restart
mid-way, two replicas (Lease leader election), CredentialsValid against a real stub."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    OperatorProcess,
    child_paths,
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    patch_spec,
    secret_data,
    wait_for,
    wait_ready,
)
from test_operator_lifecycle import KEY, byo_spec

from byollm.kube import Kube
from byollm_router import contract

pytestmark = pytest.mark.cluster


def test_drift_is_repaired(kube: Kube, running_operator: Any, namespace: str) -> None:
    ns, name = namespace, "drift"
    key_secret(kube, ns, "acme-openrouter", KEY)
    create_llmc(kube, ns, name, byo_spec())
    obj = wait_ready(kube, ns, name)
    cfg_hash = obj["status"]["configHash"]
    paths = child_paths(ns, name)

    # Someone edits the Deployment's pod template and replicas.
    kube.merge_patch(
        paths["deployment"],
        {
            "spec": {
                "replicas": 3,
                "template": {"metadata": {"annotations": {"byollm.io/config-hash": "evil"}}},
            }
        },
    )

    def dep_restored() -> bool:
        d = kube.get(paths["deployment"]) or {}
        ann = d["spec"]["template"]["metadata"]["annotations"]["byollm.io/config-hash"]
        return bool(ann == cfg_hash and d["spec"]["replicas"] == 1)

    wait_for("Deployment drift put back", dep_restored, timeout=30)

    # Someone points the router at another provider through the Secret.
    kube.merge_patch(paths["llm-secret"], {"stringData": {contract.LLM_BASE_URL: "https://x.io"}})
    wait_for(
        "Secret drift put back",
        lambda: (
            secret_data(kube, ns, f"{name}-llm")[contract.LLM_BASE_URL]
            == "https://openrouter.ai/api/v1"
        ),
        timeout=30,
    )

    # Someone deletes the Service and the NetworkPolicy.
    for kind in ("service", "networkpolicy"):
        uid = (kube.get(paths[kind]) or {})["metadata"]["uid"]
        kube.request("DELETE", paths[kind])
        wait_for(
            f"{kind} recreated",
            lambda p=paths[kind], u=uid: (o := kube.get(p)) and o["metadata"]["uid"] != u,
            timeout=30,
        )
    wait_ready(kube, ns, name)


def test_delete_garbage_collects_children(
    kube: Kube, running_operator: Any, namespace: str
) -> None:
    ns, name = namespace, "gc"
    key_secret(kube, ns, "acme-openrouter", KEY)
    create_llmc(kube, ns, name, byo_spec())
    wait_ready(kube, ns, name)
    paths = child_paths(ns, name)
    assert all(kube.get(p) is not None for p in paths.values())
    kube.request("DELETE", llmc_path(ns, name))
    wait_for(
        "children garbage-collected",
        lambda: all(kube.get(p) is None for p in paths.values()),
        timeout=60,
    )
    # The tenant's own Secret is not ours: it stays.
    assert secret_data(kube, ns, "acme-openrouter")


def test_restart_midway_converges(
    kube: Kube, running_operator: OperatorProcess, namespace: str
) -> None:
    ns = namespace
    key_secret(kube, ns, "acme-openrouter", KEY)
    create_llmc(kube, ns, "r1", byo_spec())
    wait_ready(kube, ns, "r1")
    running_operator.stop()  # SIGTERM; the lease is left to expire
    # While it is down: a spec change, a new LLMConfig, a deleted child.
    patch_spec(kube, ns, "r1", {"provider": {"defaultModel": "openai/gpt-4o"}})
    create_llmc(kube, ns, "r2", {"mode": "Managed"})
    kube.request("DELETE", child_paths(ns, "r1")["service"])
    t0 = time.monotonic()
    running_operator.start()
    running_operator.wait_leading()
    obj = wait_ready(kube, ns, "r1")
    wait_ready(kube, ns, "r2")
    print(f"restart -> converged in {time.monotonic() - t0:.1f}s")
    assert obj["status"]["model"] == "openai/gpt-4o"
    assert secret_data(kube, ns, "r1-llm")[contract.LLM_MODEL] == "openai/gpt-4o"
    assert kube.get(child_paths(ns, "r1")["service"]) is not None


def test_two_replicas_do_not_fight(
    kube: Kube, running_operator: OperatorProcess, control_plane: Any, namespace: str
) -> None:
    ns = namespace
    second = OperatorProcess(Path(control_plane.operator_kubeconfig), Path(control_plane.log_dir))
    second.start()
    try:
        time.sleep(6)  # > lease duration: a fighting replica would have taken over by now
        assert "acquired the leader lease" not in second.log(), "two leaders at once"
        assert second.proc is not None
        assert second.proc.poll() is None
        key_secret(kube, ns, "acme-openrouter", KEY)
        create_llmc(kube, ns, "ha", byo_spec())
        wait_ready(kube, ns, "ha")
        assert "acquired the leader lease" not in second.log()

        # The leader dies: the follower takes over and reconciles.
        t0 = time.monotonic()
        running_operator.stop()
        second.wait_leading(timeout=30)
        print(f"failover: follower leading after {time.monotonic() - t0:.1f}s")
        patch_spec(kube, ns, "ha", {"provider": {"defaultModel": "openai/gpt-4o"}})
        obj = wait_ready(kube, ns, "ha")
        assert obj["status"]["model"] == "openai/gpt-4o"
    finally:
        second.stop()
    # Give the session operator back (the next test's fixture would do it too).
    running_operator.start()
    running_operator.wait_leading()


def test_credentials_valid_against_stub(
    kube: Kube, running_operator: Any, stub_provider: dict[str, Any], namespace: str
) -> None:
    ns, name = namespace, "creds"
    port, good = stub_provider["port"], stub_provider["key"]
    key_secret(kube, ns, "stub-key", good)
    spec = {
        "mode": "BYO",
        "provider": {
            "type": "openai",  # its /models needs the key, so CredentialsValid can be True
            # Resolved to 127.0.0.1 by the test operator's BYOLLM_PROBE_RESOLVE; the SSRF
            # guard admits it through BYOLLM_UPSTREAM_ALLOWLIST (127.0.0.1, *.svc).
            "baseURL": f"http://stub.{ns}.svc:{port}/v1",
            "defaultModel": "stub-model",
            "apiKey": {"secretKeyRef": {"name": "stub-key"}},
        },
    }
    create_llmc(kube, ns, name, spec)
    obj = wait_ready(kube, ns, name)
    creds = condition(obj, "CredentialsValid")
    assert (creds["status"], creds["reason"]) == ("True", "Valid"), creds

    # Revoked key: the provider says 401 -> CredentialsValid=False, Ready=False.
    key_secret(kube, ns, "stub-key", "sk-stub-revoked-000000000")

    def invalid() -> dict[str, Any] | None:
        c = condition(kube.get(llmc_path(ns, name)), "CredentialsValid")
        return c if c.get("status") == "False" else None

    c = wait_for("CredentialsValid=False", invalid, timeout=30)
    assert c["reason"] == "InvalidCredentials"
    assert "sk-stub" not in c["message"]
    ready = condition(kube.get(llmc_path(ns, name)), "Ready")
    assert ready["status"] == "False"
    assert "InvalidCredentials" in ready["message"]

    # A provider that cannot be reached is Unknown and does not block Ready.
    patch_spec(kube, ns, name, {"provider": {"baseURL": f"http://gone.{ns}.svc:1/v1"}})
    key_secret(kube, ns, "stub-key", good)
    obj = wait_ready(kube, ns, name)
    creds = condition(obj, "CredentialsValid")
    assert (creds["status"], creds["reason"]) == ("Unknown", "Unreachable"), creds
