"""Provider adapters, one module per wire format, chosen once from the config."""

from __future__ import annotations

from byollm_router.config import RouterConfig
from byollm_router.contract import Mode, ProviderType
from byollm_router.providers.anthropic import Anthropic
from byollm_router.providers.azure import Azure
from byollm_router.providers.base import LocalAnswer, Provider, UpstreamCall
from byollm_router.providers.openai_compat import OpenAICompatible

__all__ = ["LocalAnswer", "Provider", "UpstreamCall", "build_provider"]


def build_provider(cfg: RouterConfig) -> Provider:
    """The one upstream adapter this router talks to. There is deliberately no second one:
    a failing provider is never replaced by another: no fallback."""
    key = cfg.upstream_key.get_secret_value() if cfg.upstream_key else None
    if cfg.mode is Mode.MANAGED:
        return OpenAICompatible("managed", cfg.base_url, key)
    assert cfg.provider is not None
    assert key is not None
    if cfg.provider is ProviderType.AZURE:
        deployments = [cfg.model or "", *cfg.routing.models.values()]
        return Azure(cfg.base_url, key, cfg.azure_api_version, deployments)
    if cfg.provider is ProviderType.ANTHROPIC:
        return Anthropic(cfg.base_url, key, max_event_bytes=cfg.max_buffered_response_bytes)
    return OpenAICompatible(cfg.provider.value, cfg.base_url, key)
