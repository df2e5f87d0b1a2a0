"""Every example CR in deploy/examples is accepted by the real API server (CRD schema + CEL).

Server-side dry-run: the API server runs defaulting, the structural schema and every CEL
rule, and stores nothing. One example per provider type, plus Managed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from byollm.kube import Kube

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "examples").glob("*.yaml"))


def test_one_example_per_provider_and_mode() -> None:
    docs = [yaml.safe_load(p.read_text()) for p in EXAMPLES]
    types = {d["spec"]["provider"]["type"] for d in docs if "provider" in d["spec"]}
    assert types == {"openai", "azure", "anthropic", "openrouter", "groq", "ollama", "custom"}
    assert any(d["spec"]["mode"] == "Managed" for d in docs)
    names = [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs]
    assert len(set(names)) == len(names), "examples must be appliable together"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_accepted_by_the_api_server(
    path: Path, kube: Kube, crd: Any, namespace: str
) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = namespace
    stored = kube.apply(doc, dry_run=True)
    assert stored["spec"]["mode"] == doc["spec"]["mode"]
    assert stored["spec"]["active"] is True  # defaulted by the CRD schema
