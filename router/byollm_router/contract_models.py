"""The configuration contract's pydantic models (re-exported by ``contract``).

Apart from ``contract`` so the router's server process, which parses its environment by
hand (``config.py``), never loads pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from byollm_router.contract import (
    BYOLLM_MANAGED_MODEL,
    BYOLLM_MANAGED_URL,
    BYOLLM_UPSTREAM_ALLOWLIST,
    LLM_API_KEY,
    LLM_AZURE_API_VERSION,
    LLM_BASE_URL,
    LLM_MODE,
    LLM_MODEL,
    LLM_PROVIDER,
    LLM_ROUTING,
    Category,
    Mode,
    ProviderType,
)


class RoutingTable(BaseModel):
    """The auto-router's table: which model serves each category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auto: bool = Field(
        default=False,
        description='When true, a request without "model" is auto-routed like model "auto".',
    )
    models: dict[Category, str] = Field(default_factory=dict)


class RouterEnv(BaseModel):
    """The ``<name>-llm`` Secret's content as a model: the operator builds one per spec and
    writes :meth:`to_env`; :meth:`from_env` reads such a mapping back (the router's
    ``load_config`` then validates and resolves it). BYO fields are None in Managed mode,
    and None means the variable is absent, never empty: that is how the four BYO keys are
    wiped on a revert to Managed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    provider: ProviderType | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    azure_api_version: str | None = None
    routing: RoutingTable | None = None
    managed_url: str | None = None
    managed_model: str | None = None
    upstream_allowlist: str | None = None

    def to_env(self) -> dict[str, str]:
        env = {LLM_MODE: self.mode.value}
        values: dict[str, str | None] = {
            LLM_PROVIDER: self.provider.value if self.provider else None,
            LLM_BASE_URL: self.base_url,
            LLM_API_KEY: self.api_key.get_secret_value() if self.api_key else None,
            LLM_MODEL: self.model,
            LLM_AZURE_API_VERSION: self.azure_api_version,
            LLM_ROUTING: self.routing.model_dump_json() if self.routing else None,
            BYOLLM_MANAGED_URL: self.managed_url,
            BYOLLM_MANAGED_MODEL: self.managed_model,
            BYOLLM_UPSTREAM_ALLOWLIST: self.upstream_allowlist,
        }
        env.update({k: v for k, v in values.items() if v is not None})
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RouterEnv:
        """Inverse of :meth:`to_env` (raises pydantic's ValidationError on bad values)."""
        routing = env.get(LLM_ROUTING)
        return cls(
            mode=Mode(env[LLM_MODE]),
            provider=ProviderType(env[LLM_PROVIDER]) if env.get(LLM_PROVIDER) else None,
            base_url=env.get(LLM_BASE_URL),
            api_key=SecretStr(env[LLM_API_KEY]) if env.get(LLM_API_KEY) else None,
            model=env.get(LLM_MODEL),
            azure_api_version=env.get(LLM_AZURE_API_VERSION),
            routing=RoutingTable.model_validate_json(routing) if routing else None,
            managed_url=env.get(BYOLLM_MANAGED_URL),
            managed_model=env.get(BYOLLM_MANAGED_MODEL),
            upstream_allowlist=env.get(BYOLLM_UPSTREAM_ALLOWLIST),
        )
