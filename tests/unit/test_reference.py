"""docs/reference.md is rendered from the CRD (its freshness is checked with the other
generated files in test_operator_api.py)."""

from __future__ import annotations

from byollm_dev import reference


def test_reference_documents_every_rule_and_field() -> None:
    text = reference.render()
    for field in (
        "spec.provider.baseURL",
        "spec.routing.models.longContext",
        "status.apiKeyPrefix",
    ):
        assert f"`{field}`" in text
    assert "spec.provider.apiKey: set exactly one of secretKeyRef or sealed" in text
