"""The LLMConfig lifecycle on the real control plane (kwok nodes run the router pods).

BYO apply -> Ready; replicas-only change -> no new ReplicaSet; provider change -> new
ReplicaSet, old pods gone; key rotation -> rollout; revert to Managed -> the four BYO keys
absent and no trace of the key in the namespace; source Secret deleted -> condition.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from operator_helpers import (
    child_paths,
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    patch_spec,
    pods,
    replicasets,
    secret_data,
    wait_for,
    wait_ready,
    wait_rolled,
)

from byollm.kube import Kube, path
from byollm_router import contract

pytestmark = pytest.mark.cluster

KEY = "sk-or-v1-canary-3f9a7c1e5b2d4a6f8e0c"
KEY2 = "sk-or-v1-rotated-9b8a7c6d5e4f3a2b1c0d"


def byo_spec(secret: str = "acme-openrouter", provider: str = "openrouter") -> dict[str, Any]:
    return {
        "mode": "BYO",
        "provider": {
            "type": provider,
            "defaultModel": "qwen/qwen3-30b-a3b-instruct",
            "apiKey": {"secretKeyRef": {"name": secret, "key": "apiKey"}},
        },
        "routing": {"auto": True, "models": {"fast": "openai/gpt-oss-20b"}},
        "access": {"podSelector": {"matchLabels": {"app": "agent"}}},
    }


def _all_namespace_text(kube: Kube, ns: str, skip_secret: str) -> str:
    """Every object in the namespace a key could hide in, as one JSON string."""
    out = []
    for p in (
        f"/api/v1/namespaces/{ns}/secrets",
        f"/api/v1/namespaces/{ns}/configmaps",
        f"/api/v1/namespaces/{ns}/pods",
        f"/api/v1/namespaces/{ns}/services",
        f"/api/v1/namespaces/{ns}/events",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        f"/apis/apps/v1/namespaces/{ns}/replicasets",
        f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
        llmc_path(ns),
    ):
        for item in kube.list(p):
            if p.endswith("/secrets") and item["metadata"]["name"] == skip_secret:
                continue  # the tenant's own source Secret
            out.append(json.dumps(item))
    return "\n".join(out)


def _leaks(text: str, key: str) -> list[str]:
    b64 = base64.b64encode(key.encode()).decode()
    return [form for form in (key, b64, key[8:]) if form in text]


def test_byo_lifecycle(kube: Kube, running_operator: Any, namespace: str) -> None:
    ns, name = namespace, "acme"
    key_secret(kube, ns, "acme-openrouter", KEY)
    t0 = time.monotonic()
    create_llmc(kube, ns, name, byo_spec())
    obj = wait_ready(kube, ns, name)
    print(f"create -> Ready: {time.monotonic() - t0:.1f}s")

    # Secret: exactly the BYO contract; status: prefix only, endpoint, generation.
    env = secret_data(kube, ns, f"{name}-llm")
    assert set(contract.BYO_SECRET_KEYS) <= set(env)
    assert set(env) - {contract.BYOLLM_UPSTREAM_ALLOWLIST} == {
        contract.LLM_MODE,
        *contract.BYO_SECRET_KEYS,
        contract.LLM_ROUTING,
    }
    assert env[contract.LLM_API_KEY] == KEY
    assert env[contract.LLM_MODE] == "BYO"
    st = obj["status"]
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert st["apiKeyPrefix"] == KEY[:8]
    assert st["endpoint"] == f"http://{name}-router.{ns}.svc:8080/v1"
    assert (st["mode"], st["provider"], st["model"]) == (
        "BYO",
        "openrouter",
        "qwen/qwen3-30b-a3b-instruct",
    )
    dep = kube.get(child_paths(ns, name)["deployment"])
    assert dep is not None
    assert dep["status"]["availableReplicas"] == 1
    for ref in dep["metadata"]["ownerReferences"]:
        assert ref["uid"] == obj["metadata"]["uid"]
    h1 = st["configHash"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["byollm.io/config-hash"] == h1
    assert not _leaks(json.dumps(dep), KEY)
    assert not _leaks(json.dumps(obj), KEY)

    # Only router.replicas: same ReplicaSet, scaled.
    rs_before = replicasets(kube, ns, name)
    patch_spec(kube, ns, name, {"router": {"replicas": 2}})
    obj = wait_ready(kube, ns, name)
    rs_after = replicasets(kube, ns, name)
    assert set(rs_after) == set(rs_before), "replicas-only change must not roll"
    assert obj["status"]["configHash"] == h1
    assert len(pods(kube, ns, name)) == 2

    # Provider change: new ReplicaSet with a new hash, old pods gone, Ready again.
    t0 = time.monotonic()
    patch_spec(kube, ns, name, {"provider": {"type": "groq"}})
    obj = wait_ready(kube, ns, name)
    h2 = obj["status"]["configHash"]
    assert h2 != h1
    rolled = wait_rolled(kube, ns, name, h2)
    print(f"provider change -> Ready+rolled: {time.monotonic() - t0:.1f}s (+{rolled:.1f}s)")
    rs_now = replicasets(kube, ns, name)
    new_rs = [n for n, r in rs_now.items() if r["hash"] == h2]
    assert len(new_rs) == 1
    assert new_rs[0] not in rs_before
    assert all(r["replicas"] == 0 for n, r in rs_now.items() if r["hash"] != h2)
    assert secret_data(kube, ns, f"{name}-llm")[contract.LLM_PROVIDER] == "groq"

    # Key rotation in the source Secret rolls the router.
    t0 = time.monotonic()
    key_secret(kube, ns, "acme-openrouter", KEY2)

    def rotated() -> str | None:
        o = kube.get(llmc_path(ns, name)) or {}
        h = (o.get("status") or {}).get("configHash")
        return h if h not in (None, h2) else None

    h3 = wait_for("key rotation to change the config hash", rotated, timeout=30)
    wait_rolled(kube, ns, name, h3)
    obj = wait_ready(kube, ns, name)
    print(f"key rotation -> rolled+Ready: {time.monotonic() - t0:.1f}s")
    assert obj["status"]["apiKeyPrefix"] == KEY2[:8]
    assert secret_data(kube, ns, f"{name}-llm")[contract.LLM_API_KEY] == KEY2

    # Revert to Managed: the four keys absent (read from the API), pods rolled, no key left.
    t0 = time.monotonic()
    patch_spec(kube, ns, name, {"mode": "Managed"})
    obj = wait_ready(kube, ns, name)
    h4 = obj["status"]["configHash"]
    wait_rolled(kube, ns, name, h4)
    print(f"revert to Managed -> rolled+Ready: {time.monotonic() - t0:.1f}s")
    env = secret_data(kube, ns, f"{name}-llm")
    for k in contract.BYO_SECRET_KEYS:
        assert k not in env, f"{k} must be absent after revert"
    assert env[contract.LLM_MODE] == "Managed"
    assert contract.BYOLLM_MANAGED_URL in env
    assert "apiKeyPrefix" not in obj["status"]
    assert obj["status"]["mode"] == "Managed"
    time.sleep(1)  # let Events land
    text = _all_namespace_text(kube, ns, skip_secret="acme-openrouter")
    for key in (KEY, KEY2):
        assert not _leaks(text, key), f"BYO key found in the namespace after revert: {key[:8]}"
    events = kube.list(f"/api/v1/namespaces/{ns}/events")
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == name}
    assert {"Created", "RollingOut", "ModeSwitched", "Wiped"} <= reasons, reasons


def test_source_secret_missing_then_restored(
    kube: Kube, running_operator: Any, namespace: str
) -> None:
    ns, name = namespace, "beta"
    create_llmc(kube, ns, name, byo_spec(secret="beta-key"))

    def synced_false() -> dict[str, Any] | None:
        c = condition(kube.get(llmc_path(ns, name)), "SecretSynced")
        return c if c.get("status") == "False" else None

    c = wait_for("SecretSynced=False", synced_false, timeout=30)
    assert c["reason"] == "SecretNotFound"
    assert "beta-key" in c["message"]
    assert condition(kube.get(llmc_path(ns, name)), "Ready")["status"] == "False"

    key_secret(kube, ns, "beta-key", KEY)  # the Secret index re-reconciles on creation
    wait_ready(kube, ns, name)

    kube.request("DELETE", path("v1", "Secret", ns, "beta-key"))
    c = wait_for("SecretSynced=False after delete", synced_false, timeout=30)
    assert c["reason"] == "SecretNotFound"
    ready = condition(kube.get(llmc_path(ns, name)), "Ready")
    assert ready["status"] == "False"
    assert "SecretNotFound" in ready["message"]

    key_secret(kube, ns, "beta-key", KEY, data_key="other")
    c = wait_for(
        "SecretKeyNotFound",
        lambda: (x := synced_false()) and x["reason"] == "SecretKeyNotFound" and x,
        timeout=30,
    )
    assert "apiKey" in c["message"]
    # The operator did not crash-loop: still the same process.
    assert running_operator.proc.poll() is None


def test_printer_columns(
    kube: Kube, running_operator: Any, control_plane: Any, namespace: str
) -> None:
    import shutil
    import subprocess

    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl not installed")
    key_secret(kube, namespace, "acme-openrouter", KEY)
    create_llmc(kube, namespace, "cols", byo_spec())
    wait_ready(kube, namespace, "cols")
    out = subprocess.run(
        [exe, f"--kubeconfig={control_plane.kubeconfig}", "-n", namespace, "get", "llmc"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "MODE", "PROVIDER", "MODEL", "READY", "AGE"]
    assert row.split()[:5] == ["cols", "BYO", "openrouter", "qwen/qwen3-30b-a3b-instruct", "True"]
