"""The README's LLMConfig reference is rendered from the CRD and must not go stale."""

from __future__ import annotations

from byollm_dev import reference


def test_readme_reference_is_current() -> None:
    readme = reference.README.read_text()
    assert reference.readme_with_reference(readme) == readme, (
        "README's LLMConfig reference is stale: python -m byollm_dev.reference --write-readme"
    )


def test_reference_documents_every_rule_and_field() -> None:
    text = reference.render()
    for field in (
        "spec.provider.baseURL",
        "spec.routing.models.longContext",
        "status.apiKeyPrefix",
    ):
        assert f"`{field}`" in text
    assert "spec.provider.apiKey: set exactly one of secretKeyRef or sealed" in text
