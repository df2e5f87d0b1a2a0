"""GitOps health on the real control plane: what Flux (kstatus), Argo CD (health.lua) and
``kubectl wait`` make of a live LLMConfig through its life, and the Events it leaves.

One LLMConfig goes: created before its key Secret exists (Stalled) -> the Secret appears
(Ready; a real ``kubectl wait --for=condition=Ready`` started before it returns) -> a model
change (in progress until the new generation is observed; ``kubectl wait`` returns only
for it) -> a key the provider refuses (Stalled) -> ``active: false`` (served by Managed:
Ready, Healthy). At each step the live object is judged by the kstatus library Flux uses
and by the Argo CD Lua script, and checked for exactly one of Ready/Reconciling/Stalled.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    patch_spec,
    wait_for,
    wait_ready,
)
from stubs.gitops import argocd_health, kstatus
from stubs.tools import tool

from byollm.kube import Kube

pytestmark = pytest.mark.cluster

GOOD_MODEL, NEW_MODEL = "stub-model", "stub-model-2"
BAD_KEY = "sk-refused-by-the-provider-7c1e"


@pytest.fixture(scope="module")
def kubectl() -> str:
    return tool("kubectl")


@pytest.fixture(scope="module")
def kstatus_bin() -> str:
    return tool("kstatus")


def _wait_cmd(
    kubectl: str, kubeconfig: Path, ns: str, name: str, cond: str, timeout: str
) -> list[str]:
    return [
        kubectl,
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        ns,
        "wait",
        f"--for=condition={cond}",
        f"--timeout={timeout}",
        f"llmc/{name}",
    ]


def _judge(kstatus_bin: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(kstatus status, Argo CD health status) of one object."""
    return kstatus(kstatus_bin, obj)["status"], argocd_health(obj)["status"]


def _summary_is_exclusive(obj: dict[str, Any]) -> str:
    """Exactly one of Ready/Reconciling/Stalled is True, all at the object's generation."""
    gen = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == gen
    true = []
    for t in ("Ready", "Reconciling", "Stalled"):
        c = condition(obj, t)
        assert c, f"{t} missing"
        assert c["observedGeneration"] == gen, c
        if c["status"] == "True":
            true.append(t)
    assert len(true) == 1, true
    return true[0]


def test_flux_argocd_and_kubectl_wait_through_a_lifecycle(
    kube: Kube,
    running_operator: Any,
    namespace: str,
    control_plane: Any,
    stub_provider: dict[str, Any],
    kubectl: str,
    kstatus_bin: str,
) -> None:
    ns, name = namespace, "gitops"
    kc = Path(control_plane.kubeconfig)
    spec = {
        "mode": "BYO",
        "provider": {
            "type": "openai",  # its /models needs the key, so the check proves it
            "baseURL": f"http://stub.{ns}.svc:{stub_provider['port']}/v1",  # -> the stub
            "defaultModel": GOOD_MODEL,
            "apiKey": {"secretKeyRef": {"name": "gitops-key", "key": "apiKey"}},
        },
        "routing": {"auto": False},
    }

    # 0. Just created, before the operator wrote anything: the API server serves
    # status.observedGeneration 0 (CRD default), so nobody reads it as done.
    created = create_llmc(kube, ns, name, spec)
    assert created["status"] == {"observedGeneration": 0}
    assert _judge(kstatus_bin, created) == ("InProgress", "Progressing")

    # 1. The key Secret does not exist: Stalled, which no retry clears.
    def stalled(reason: str) -> Any:
        def check() -> dict[str, Any] | None:
            obj = kube.get(llmc_path(ns, name))
            c = condition(obj, "Stalled")
            gen = (obj or {}).get("metadata", {}).get("generation")
            ok = c.get("status") == "True" and c.get("reason") == reason
            return obj if ok and c.get("observedGeneration") == gen else None

        return check

    obj = wait_for("Stalled SecretNotFound", stalled("SecretNotFound"), timeout=30)
    assert _summary_is_exclusive(obj) == "Stalled"
    assert "gitops-key" in condition(obj, "Stalled")["message"]
    assert _judge(kstatus_bin, obj) == ("Failed", "Degraded")
    res = subprocess.run(
        _wait_cmd(kubectl, kc, ns, name, "Stalled", "10s"), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        _wait_cmd(kubectl, kc, ns, name, "Ready", "2s"), capture_output=True, text=True
    )
    assert res.returncode != 0, "kubectl wait must not see Ready while the Secret is missing"

    # 2. kubectl wait started first; the Secret appears; it returns once Ready.
    waiter = subprocess.Popen(
        _wait_cmd(kubectl, kc, ns, name, "Ready", "120s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    assert waiter.poll() is None, "kubectl wait returned before the Secret existed"
    key_secret(kube, ns, "gitops-key", stub_provider["key"])
    out, err = waiter.communicate(timeout=130)
    assert waiter.returncode == 0, err
    assert f"llmconfig.byollm.io/{name} condition met" in out
    obj = kube.get(llmc_path(ns, name))
    assert obj is not None
    assert _summary_is_exclusive(obj) == "Ready"
    assert condition(obj, "CredentialsValid")["status"] == "True"
    assert _judge(kstatus_bin, obj) == ("Current", "Healthy")

    # 3. A spec change: in progress until the new generation is observed; kubectl wait
    # returns only for the new generation.
    patched = patch_spec(kube, ns, name, {"provider": {"defaultModel": NEW_MODEL}})
    gen = patched["metadata"]["generation"]
    assert patched["status"]["observedGeneration"] < gen
    assert _judge(kstatus_bin, patched) == ("InProgress", "Progressing")
    res = subprocess.run(
        _wait_cmd(kubectl, kc, ns, name, "Ready", "120s"), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    obj = kube.get(llmc_path(ns, name))
    assert obj is not None
    assert condition(obj, "Ready")["observedGeneration"] == gen
    assert obj["status"]["model"] == NEW_MODEL
    assert _summary_is_exclusive(obj) == "Ready"
    assert _judge(kstatus_bin, obj) == ("Current", "Healthy")

    # 4. The key rotated to one the provider refuses: Stalled (InvalidCredentials).
    key_secret(kube, ns, "gitops-key", BAD_KEY)
    obj = wait_for("Stalled InvalidCredentials", stalled("InvalidCredentials"), timeout=45)
    assert _summary_is_exclusive(obj) == "Stalled"
    assert _judge(kstatus_bin, obj) == ("Failed", "Degraded")
    res = subprocess.run(
        _wait_cmd(kubectl, kc, ns, name, "Ready", "2s"), capture_output=True, text=True
    )
    assert res.returncode != 0

    # 5. active: false -> served by Managed: Ready and Healthy (the bad key is not used).
    patch_spec(kube, ns, name, {"active": False})
    res = subprocess.run(
        _wait_cmd(kubectl, kc, ns, name, "Ready", "120s"), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    obj = wait_ready(kube, ns, name)
    assert obj["status"]["mode"] == "Managed"
    assert _summary_is_exclusive(obj) == "Ready"
    assert _judge(kstatus_bin, obj) == ("Current", "Healthy")

    # Events: all from byollm-operator; each RollingOut names the changed fields, no values.
    def rolling_outs() -> list[dict[str, Any]] | None:
        evs = [
            e
            for e in kube.list(f"/api/v1/namespaces/{ns}/events")
            if e["involvedObject"]["name"] == name and e["reason"] == "RollingOut"
        ]
        return evs if len(evs) >= 3 else None

    rolls = wait_for("three RollingOut Events", rolling_outs, timeout=15)
    events = [
        e
        for e in kube.list(f"/api/v1/namespaces/{ns}/events")
        if e["involvedObject"]["name"] == name
    ]
    for e in events:
        assert e["source"].get("component") == "byollm-operator", e
        assert e.get("reportingComponent") == "byollm-operator", e
        assert e.get("reportingInstance"), e
    messages = [
        e["message"] for e in sorted(rolls, key=lambda e: e["metadata"]["creationTimestamp"])
    ]
    text = "\n".join(messages)
    for value in (stub_provider["key"], BAD_KEY, BAD_KEY[:8], NEW_MODEL, "stub.", "Managed"):
        assert value not in text, f"RollingOut Event shows a value: {value!r}"
    assert any(m.startswith("model changed") for m in messages), messages
    assert any(m.startswith("key changed") for m in messages), messages
    assert any(m.startswith("mode, ") and "key" in m for m in messages), messages
