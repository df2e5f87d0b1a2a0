"""Key access is opt-in: the operator reads a tenant's key only from a Secret labelled
``byollm.io/llm-key: "true"``; and a check that cannot prove a key says so."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    wait_for,
    wait_ready,
)

from byollm.kube import Kube, path
from byollm_operator import builders
from byollm_router import contract

pytestmark = pytest.mark.cluster

CANARY = "sk-optin-CANARY-0123456789abcdef"


def test_unlabelled_secret_is_never_read(kube: Kube, running_operator: Any, namespace: str) -> None:
    """Naming a Secret is not enough to have it sent to a URL of the creator's choice."""
    ns, name = namespace, "optin"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-password", "namespace": ns},
            "data": {"apiKey": base64.b64encode(CANARY.encode()).decode()},
        }
    )
    spec = {
        "mode": "BYO",
        "provider": {
            "type": "custom",
            "baseURL": "https://attacker.example.com/v1",
            "defaultModel": "m",
            "apiKey": {"secretKeyRef": {"name": "db-password"}},
        },
    }
    create_llmc(kube, ns, name, spec)

    def refused() -> dict[str, Any] | None:
        obj = kube.get(llmc_path(ns, name))
        return obj if condition(obj, "SecretSynced").get("reason") == "SecretNotOptedIn" else None

    obj = wait_for("SecretSynced=False SecretNotOptedIn", refused, timeout=30)
    synced = condition(obj, "SecretSynced")
    assert synced["status"] == "False"
    assert f"{contract.LLM_KEY_LABEL}=true" in synced["message"]  # says how to fix it
    assert "apiKeyPrefix" not in obj["status"] or obj["status"]["apiKeyPrefix"] is None
    assert CANARY[:8] not in str(obj["status"])
    llm = kube.get(path("v1", "Secret", ns, builders.llm_secret_name(name)))
    assert llm is None  # no router config made from it

    # The owner of the Secret opts in: now it is used.
    key_secret(kube, ns, "db-password", CANARY)

    def synced_now() -> dict[str, Any] | None:
        o = kube.get(llmc_path(ns, name))
        return o if condition(o, "SecretSynced").get("status") == "True" else None

    obj = wait_for("SecretSynced=True after opt-in", synced_now, timeout=30)
    assert obj["status"]["apiKeyPrefix"] == CANARY[:8]


def test_custom_endpoint_credentials_not_verifiable(
    kube: Kube, running_operator: Any, namespace: str, stub_provider: dict[str, Any]
) -> None:
    """A custom endpoint whose check succeeds is Unknown/NotVerifiable, not True: its
    /models may answer anyone. Ready does not wait on it."""
    ns, name = namespace, "custom-creds"
    key_secret(kube, ns, "k", stub_provider["key"])
    create_llmc(
        kube,
        ns,
        name,
        {
            "mode": "BYO",
            "provider": {
                "type": "custom",
                "baseURL": f"http://stub.{ns}.svc:{stub_provider['port']}/v1",
                "defaultModel": "stub-model",
                "apiKey": {"secretKeyRef": {"name": "k"}},
            },
        },
    )
    obj = wait_ready(kube, ns, name)
    creds = condition(obj, "CredentialsValid")
    assert (creds["status"], creds["reason"]) == ("Unknown", "NotVerifiable"), creds


def test_operator_lists_and_watches_only_labelled_secrets(
    control_plane: Any, kube: Kube, running_operator: Any, namespace: str
) -> None:
    """The API server filters Secrets for the operator: its list and watch requests carry a
    selector on byollm.io/llm-key, so no other Secret of the cluster reaches it."""
    key_secret(kube, namespace, "k", CANARY)  # some Secret traffic while it runs
    user = "byollm-operator"

    def requests() -> list[str] | None:
        uris = []
        for line in (Path(control_plane.log_dir) / "audit.log").read_text().splitlines():
            ev = json.loads(line)
            ref = ev.get("objectRef") or {}
            if (
                ev.get("user", {}).get("username") == user
                and ev.get("verb") in ("list", "watch")
                and ref.get("resource") == "secrets"
            ):
                uris.append(ev["requestURI"])
        return uris or None

    uris = wait_for("the operator's Secret list/watch in the audit log", requests, timeout=30)
    selectors = [
        urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query).get("labelSelector") for uri in uris
    ]
    assert selectors == [[contract.LLM_KEY_LABEL]] * len(uris), uris
