"""byollm: the LLMConfig API, the portal SDK and the ``byollm`` CLI.

    import byollm

    llm = byollm.Client(namespace="tenant-acme")
    llm.create("acme", provider="openai", default_model="gpt-4o-mini", api_key=key)

Submodules: ``byollm.api`` (the LLMConfig models and the CRD), ``byollm.sealing`` (sealed
keys), ``byollm.kube`` (the Kubernetes layer the SDK, CLI and operator share). Names are
imported on first use, so ``byollm --help`` does not load the Kubernetes client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from byollm.client import (
        NOT_GIVEN,
        AlreadyExistsError,
        AsyncClient,
        Client,
        LLMConfigError,
        LLMConfigView,
        NotFoundError,
        NotReadyError,
        ValidationError,
        key_secret_name,
    )

__all__ = [
    "NOT_GIVEN",
    "AlreadyExistsError",
    "AsyncClient",
    "Client",
    "LLMConfigError",
    "LLMConfigView",
    "NotFoundError",
    "NotReadyError",
    "ValidationError",
    "key_secret_name",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("byollm.client"), name)
    raise AttributeError(f"module 'byollm' has no attribute {name!r}")
