"""Hostnames that resolve inside the cluster: a clear status condition, not a silent router.

The CRD's CEL rules refuse literal loopback/private/metadata addresses at apply time, but a
DNS name (``inside.example.com``) can resolve anywhere. The operator's credentials probe
now runs ``guard.check_upstream`` (static check, resolve, check every answer) before it
connects: a refused host shows as ``CredentialsValid=False`` reason ``UpstreamBlocked``
with a message naming ``spec.provider.baseURL`` and the address, and Ready goes False. The
router refuses the same host at connect time (same guard, same allowlist).

Private, CGNAT, link-local and metadata answers are tested as pure functions (fake DNS
answers, refused before any connect). On the cluster, every name resolves to 127.0.0.1
(the test operator's BYOLLM_PROBE_RESOLVE), so the only packets are on loopback: an
allowlisted ``*.svc`` name reaches the stub provider, a non-allowlisted one is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import (
    OperatorProcess,
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    wait_for,
)
from security_helpers import StubProvider

from byollm.api import ProviderSpec
from byollm.kube import Kube
from byollm_operator.reconcile import make_probe
from byollm_operator.settings import Settings
from byollm_router import guard

KEY = "sk-dns-test-0123456789abcdef"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("100.64.1.1", "cgnat"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("fd12:3456::1", "unique-local"),
        ("::ffff:10.0.0.1", "ipv4-mapped"),
    ],
)
def test_probe_refuses_a_hostname_resolving_inside(answer: str, reason: str) -> None:
    """Pure: a fake DNS answer, refused before any socket is opened."""
    settings = Settings(probe_resolve={"*": answer}, credentials_probe_timeout=2)
    provider = ProviderSpec.model_validate(
        {"type": "custom", "baseURL": "https://inside.example.com/v1", "defaultModel": "m"}
    )
    status, why, message = make_probe(settings)(provider, KEY)
    assert (status, why) == ("False", "UpstreamBlocked"), message
    assert message.startswith("spec.provider.baseURL:")
    assert f"resolves to {ipaddress.ip_address(answer)}" in message
    assert reason in message
    assert KEY not in message


def test_allowlisted_hostname_may_resolve_inside() -> None:
    """Pure: the operator's allowlist admits an in-cluster model host (no connect here)."""

    async def dns(host: str, port: int) -> list[str]:
        return ["10.96.4.2"]

    allow = guard.Allowlist.parse("ollama.models.svc.cluster.local")
    url = "http://ollama.models.svc.cluster.local:11434/v1/models"
    assert asyncio.run(guard.check_upstream(url, allow, dns)) == ["10.96.4.2"]
    with pytest.raises(guard.GuardError, match=r"resolves to 10\.96\.4\.2"):
        asyncio.run(guard.check_upstream("https://other.example.com/v1", allow, dns))

    async def metadata(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    with pytest.raises(guard.GuardError, match="metadata"):  # never, allowlisted or not
        asyncio.run(guard.check_upstream(url, allow, metadata))


@pytest.mark.cluster
def test_condition_on_the_cluster(
    control_plane: Any, kube: Kube, running_operator: Any, namespace: str, tmp_path: Path
) -> None:
    """Allowlisted vs not, both resolving to 127.0.0.1: Valid vs UpstreamBlocked."""
    ns = namespace
    allowed_host = f"models.{ns}.svc"
    running_operator.stop()
    op = OperatorProcess(
        Path(control_plane.operator_kubeconfig),
        Path(control_plane.log_dir),
        extra_env={"BYOLLM_UPSTREAM_ALLOWLIST": allowed_host},  # no 127.0.0.1, no *.svc
    )
    stub = StubProvider(KEY, tmp_path / "stub.log")
    try:
        op.start()
        op.wait_leading()
        key_secret(kube, ns, "k", KEY)

        def byo(url: str) -> dict[str, Any]:
            return {
                "mode": "BYO",
                "provider": {
                    "type": "openai",  # its /models needs the key: a 2xx proves it
                    "baseURL": url,
                    "defaultModel": "stub-model",
                    "apiKey": {"secretKeyRef": {"name": "k"}},
                },
            }

        def creds(name: str, reason: str) -> dict[str, Any]:
            def check() -> dict[str, Any] | None:
                obj = kube.get(llmc_path(ns, name))
                return obj if condition(obj, "CredentialsValid").get("reason") == reason else None

            result: dict[str, Any] = wait_for(f"{name} CredentialsValid {reason}", check, 45)
            return result

        create_llmc(kube, ns, "allowed", byo(f"http://{allowed_host}:{stub.port}/v1"))
        obj = creds("allowed", "Valid")
        assert condition(obj, "CredentialsValid")["status"] == "True"
        reached = len(stub.requests())
        assert reached >= 1

        blocked = {
            "inside": f"https://inside.example.com:{stub.port}/v1",
            "other-svc": f"https://other.{ns}.svc:{stub.port}/v1",
        }
        for name, url in blocked.items():
            create_llmc(kube, ns, name, byo(url))
        for name in blocked:
            obj = creds(name, "UpstreamBlocked")
            c = condition(obj, "CredentialsValid")
            print(f"\n{name}: CredentialsValid={c['status']} {c['reason']}: {c['message']}")
            assert c["status"] == "False"
            assert c["message"].startswith("spec.provider.baseURL:")
            assert "resolves to 127.0.0.1 (loopback)" in c["message"]
            ready = condition(obj, "Ready")
            assert ready["status"] == "False"
            assert "UpstreamBlocked" in ready["message"]
        assert len(stub.requests()) == reached, "a refused host was connected to"
        assert op.proc is not None
        assert op.proc.poll() is None
        assert "Traceback" not in op.log(), op.log()[-2000:]
        print(json.dumps({"stub requests": reached}))
    finally:
        stub.stop()
        op.stop()
        running_operator.start()
        running_operator.wait_leading()
