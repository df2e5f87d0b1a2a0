"""The ``byollm dev`` cluster-DNS stand-in answers only in-cluster Service names."""

from __future__ import annotations

import pytest

from byollm_dev import devpod


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("stub.byollm-dev.svc", True),
        ("litellm.byollm-system.svc.cluster.local", True),
        ("STUB.NS.SVC.", True),
        ("api.openai.com", False),
        ("svc.example.com", False),
        ("evil-svc", False),
    ],
)
def test_only_service_names_are_answered(host: str, service: bool) -> None:
    assert devpod._is_service(host) is service


async def test_resolver_answers_services_with_loopback() -> None:
    assert await devpod._resolver("stub.byollm-dev.svc", 80) == ["127.0.0.1"]
