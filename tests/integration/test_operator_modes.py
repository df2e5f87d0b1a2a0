"""The active toggle (keep the BYO config, serve Managed), sealed keys end to end, and the
key staying out of the operator's own log."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from operator_helpers import (
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    patch_spec,
    secret_data,
    wait_for,
    wait_ready,
    wait_rolled,
)
from test_operator_lifecycle import KEY, byo_spec

from byollm import sealing
from byollm.kube import Kube, path
from byollm_router import contract

pytestmark = pytest.mark.cluster


def test_active_false_serves_managed_and_keeps_config(
    kube: Kube, running_operator: Any, namespace: str
) -> None:
    ns, name = namespace, "toggle"
    key_secret(kube, ns, "acme-openrouter", KEY)
    create_llmc(kube, ns, name, byo_spec())
    h_byo = wait_ready(kube, ns, name)["status"]["configHash"]

    patch_spec(kube, ns, name, {"active": False})
    obj = wait_ready(kube, ns, name)
    wait_rolled(kube, ns, name, obj["status"]["configHash"])
    env = secret_data(kube, ns, f"{name}-llm")
    assert not set(contract.BYO_SECRET_KEYS) & set(env)
    assert env[contract.LLM_MODE] == "Managed"
    assert obj["status"]["mode"] == "Managed"
    assert obj["spec"]["provider"]["type"] == "openrouter"  # the BYO config is kept

    patch_spec(kube, ns, name, {"active": True})
    obj = wait_ready(kube, ns, name)
    assert obj["status"]["configHash"] == h_byo  # same config as before: same hash
    assert secret_data(kube, ns, f"{name}-llm")[contract.LLM_API_KEY] == KEY
    assert KEY not in running_operator.log()
    assert base64.b64encode(KEY.encode()).decode() not in running_operator.log()


def _public_key(kube: Kube) -> str:
    cm = wait_for(
        "sealing public key ConfigMap",
        lambda: kube.get(path("v1", "ConfigMap", "byollm-system", "byollm-sealing-public-key")),
        timeout=30,
    )
    return str(cm["data"]["publicKey"])


def test_sealed_key(kube: Kube, running_operator: Any, namespace: str) -> None:
    ns = namespace
    pub = _public_key(kube)
    plaintext = "sk-sealed-4b1d9e7f0a2c3e5d"
    spec = byo_spec()
    spec["provider"]["apiKey"] = {"sealed": sealing.seal(plaintext, pub, ns, "sealed")}
    create_llmc(kube, ns, "sealed", spec)
    obj = wait_ready(kube, ns, "sealed")
    assert obj["status"]["apiKeyPrefix"] == plaintext[:8]
    assert secret_data(kube, ns, "sealed-llm")[contract.LLM_API_KEY] == plaintext

    # The same sealed value copied to another LLMConfig does not open there.
    create_llmc(kube, ns, "copied", spec)

    def unseal_failed() -> dict[str, Any] | None:
        c = condition(kube.get(llmc_path(ns, "copied")), "SecretSynced")
        return c if c.get("status") == "False" else None

    c = wait_for("UnsealFailed on a copied sealed value", unseal_failed, timeout=30)
    assert c["reason"] == "UnsealFailed"
    assert plaintext not in c["message"]
    assert spec["provider"]["apiKey"]["sealed"] not in c["message"]
    assert kube.get(path("apps/v1", "Deployment", ns, "copied-router")) is None
    assert plaintext not in running_operator.log()


def test_deleted_token_is_recreated_and_rolls(
    kube: Kube, running_operator: Any, namespace: str
) -> None:
    ns, name = namespace, "tok"
    create_llmc(kube, ns, name, {"mode": "Managed"})
    h1 = wait_ready(kube, ns, name)["status"]["configHash"]
    p = path("v1", "Secret", ns, f"{name}-router-token")
    old = secret_data(kube, ns, f"{name}-router-token")["token"]
    kube.request("DELETE", p)

    def new_token() -> str | None:
        got = secret_data(kube, ns, f"{name}-router-token").get("token")
        return got if got and got != old else None

    wait_for("a new router token", new_token, timeout=30)
    obj = wait_for(
        "config hash to change with the token",
        lambda: (o := kube.get(llmc_path(ns, name))) and o["status"]["configHash"] != h1 and o,
        timeout=30,
    )
    wait_rolled(kube, ns, name, obj["status"]["configHash"])
    wait_ready(kube, ns, name)
