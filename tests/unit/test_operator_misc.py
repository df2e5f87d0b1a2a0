"""Conditions, RBAC file freshness, settings env names, and the credentials probe against
the real stub provider on 127.0.0.1 (through the SSRF guard)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from byollm.api import Condition, ProviderSpec
from byollm_dev import rbac
from byollm_operator import conditions as c
from byollm_operator.reconcile import judge, make_probe, probe_request
from byollm_operator.settings import Settings
from byollm_router.contract import ProviderType

ROOT = Path(__file__).resolve().parents[2]


def test_set_condition_keeps_transition_time_when_status_unchanged() -> None:
    jan, feb, mar = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    conds = c.set_condition([], c.READY, "False", c.NOT_READY, "a", 1, at=jan)
    conds = c.set_condition(conds, c.READY, "False", c.NOT_READY, "b", 2, at=feb)
    (ready,) = conds
    assert ready.last_transition_time == jan
    assert (ready.message, ready.observed_generation) == ("b", 2)
    conds = c.set_condition(conds, c.READY, "True", c.RECONCILED, "", 2, at=mar)
    assert conds[0].model_dump(by_alias=True, mode="json")["lastTransitionTime"] == (
        "2026-03-01T00:00:00Z"
    )


def test_ready_derivation() -> None:
    conds: list[Condition] = []
    for t in (c.SECRET_SYNCED, c.ROUTER_AVAILABLE):
        conds = c.set_condition(conds, t, "True", "x", "", 1)
    conds = c.set_condition(conds, c.CREDENTIALS_VALID, "Unknown", c.UNREACHABLE, "", 1)
    assert c.ready_from(conds)[0] == "True"  # unreachable provider does not block Ready
    conds = c.set_condition(conds, c.CREDENTIALS_VALID, "False", c.INVALID_CREDENTIALS, "", 1)
    status, _, message = c.ready_from(conds)
    assert status == "False"
    assert c.INVALID_CREDENTIALS in message
    assert [x.type for x in conds] == [c.SECRET_SYNCED, c.ROUTER_AVAILABLE, c.CREDENTIALS_VALID]


def test_rbac_is_least_privilege() -> None:
    for rule in rbac.CLUSTER_RULES + rbac.NAMESPACE_RULES:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "delete" not in rule["verbs"]  # children go by garbage collection


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYOLLM_ROUTER_IMAGE", "r:1")
    monkeypatch.setenv("BYOLLM_MANAGED_POD_LABELS", '{"app": "litellm"}')
    monkeypatch.setenv("BYOLLM_RESYNC_PERIOD", "7")
    s = Settings()
    assert (s.router_image, s.managed_pod_labels, s.resync_period) == ("r:1", {"app": "litellm"}, 7)


@pytest.mark.parametrize(
    ("ptype", "base", "url", "header"),
    [
        ("openai", None, "https://api.openai.com/v1/models", "Authorization"),
        ("anthropic", None, "https://api.anthropic.com/v1/models", "x-api-key"),
        (
            "azure",
            "https://a.openai.azure.com/openai",
            "https://a.openai.azure.com/openai/models?api-version=2024-10-21",
            "api-key",
        ),
        # OpenRouter's /models is public: its key-information endpoint needs the key.
        ("openrouter", None, "https://openrouter.ai/api/v1/key", "Authorization"),
    ],
)
def test_probe_request_shapes(ptype: str, base: str | None, url: str, header: str) -> None:
    spec = ProviderSpec.model_validate(
        {"type": ptype, "baseURL": base} if base else {"type": ptype}
    )
    got_url, headers = probe_request(spec, "sk-test")
    assert got_url == url
    assert header in headers


@pytest.mark.parametrize(
    ("ptype", "status", "want"),
    [
        ("openrouter", 200, ("True", "Valid")),
        ("openai", 200, ("True", "Valid")),
        ("custom", 200, ("Unknown", "NotVerifiable")),  # /models may be public there
        ("ollama", 200, ("Unknown", "NotVerifiable")),
        ("custom", 401, ("False", "InvalidCredentials")),  # a refusal still proves it
        ("openrouter", 403, ("False", "InvalidCredentials")),
        ("openai", 404, ("False", "EndpointNotFound")),  # baseURL is not the API root
        ("openai", 500, ("Unknown", "UnexpectedResponse")),
    ],
)
def test_credentials_judgement(ptype: str, status: int, want: tuple[str, str]) -> None:
    got = judge(ProviderType(ptype), status, "/v1/models")
    assert got[:2] == want
    if want[1] == "EndpointNotFound":
        assert "API root" in got[2]


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[int, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    key = "sk-stub-unit-0123456789"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/stubs/provider.py"),
            "--port",
            str(port),
            "--api-key",
            key,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield port, key
    proc.terminate()
    proc.wait(5)


def _probe(allow: str) -> Any:
    return make_probe(
        Settings(
            upstream_allowlist=allow,
            probe_resolve={"*": "127.0.0.1"},
            credentials_probe_timeout=3,
        )
    )


def test_probe_valid_invalid_unreachable(stub: tuple[int, str]) -> None:
    port, key = stub
    probe = _probe("127.0.0.1,*.svc")
    spec = ProviderSpec.model_validate({"type": "openai", "baseURL": f"http://llm.t.svc:{port}/v1"})
    assert probe(spec, key)[:2] == ("True", c.VALID)
    status, reason, message = probe(spec, "sk-wrong-key-000000000")
    assert (status, reason) == ("False", c.INVALID_CREDENTIALS)
    assert "sk-wrong" not in message
    down = ProviderSpec.model_validate({"type": "custom", "baseURL": "http://llm.t.svc:1/v1"})
    assert probe(down, key)[:2] == ("Unknown", c.UNREACHABLE)


def test_probe_guard_refuses_loopback_without_allowlist(stub: tuple[int, str]) -> None:
    port, key = stub
    spec = ProviderSpec.model_validate(
        {"type": "custom", "baseURL": f"https://llm.example:{port}/v1"}
    )
    status, reason, message = _probe("")(spec, key)
    assert (status, reason) == ("False", c.UPSTREAM_BLOCKED)
    assert "spec.provider.baseURL" in message


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "operator.md").read_text()
    for name, f in Settings.model_fields.items():
        assert f"`BYOLLM_{name.upper()}`" in doc, f"BYOLLM_{name.upper()} missing in docs"
        assert f.description, f"{name} has no description"
