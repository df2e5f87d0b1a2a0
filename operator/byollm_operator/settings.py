"""Operator settings from the environment (prefix ``BYOLLM_``), read once at startup.

Every knob the chart sets lives here, so the chart's values map one-to-one onto env vars
(``BYOLLM_ROUTER_IMAGE``, ``BYOLLM_MANAGED_URL``, ...).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from byollm_router import forbidden
from byollm_router.contract import Category


class Settings(BaseSettings):
    """Operator configuration. Field ``x`` is read from env var ``BYOLLM_X``."""

    model_config = SettingsConfigDict(env_prefix="BYOLLM_", frozen=True, extra="ignore")

    namespace: str = Field(
        default="byollm-system",
        description="The operator's own namespace: sealing key Secret, public-key ConfigMap, "
        "leader Lease. Router egress never reaches it in BYO mode.",
    )
    managed_url: str = Field(
        default="http://litellm.byollm-system.svc:4000/v1",
        description="The platform's shared LiteLLM; Managed routers send every call here.",
    )
    managed_model: str = Field(
        default="",
        description="The platform's default model in Managed mode: requests without a model "
        '(or model "auto" without a managed_routing table) use it. Empty: such requests are '
        "sent without a model and the shared LiteLLM decides.",
    )
    managed_routing: dict[Category, str] = Field(
        default_factory=dict,
        description='The platform\'s auto-router table in Managed mode (model "auto"): '
        "category (fast, balanced, reasoning, longContext, vision, code) -> model on the "
        "shared LiteLLM; a missing category uses managed_model. JSON.",
    )
    managed_namespace: str = Field(
        default="byollm-system", description="Namespace of the shared LiteLLM (Managed egress)."
    )
    managed_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "litellm"},
        description="Pod labels of the shared LiteLLM (Managed egress), JSON.",
    )
    managed_port: int = Field(default=4000, description="Port of the shared LiteLLM.")
    managed_cidr: str = Field(
        default="",
        description="Alternative to the selectors: an ipBlock for the shared LiteLLM.",
    )
    router_image: str = Field(default="byollm/router:0.1.0", description="Router container image.")
    router_image_pull_policy: str = Field(
        default="IfNotPresent", description="imagePullPolicy of the router container."
    )
    upstream_allowlist: str = Field(
        default="",
        description="Comma-separated hosts/CIDRs the SSRF guard admits (in-cluster "
        "self-hosted models); passed to routers and used by the credentials probe.",
    )
    upstream_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces of in-cluster self-hosted models (Ollama, vLLM, TGI) that BYO "
        "routers may reach: their pod addresses are private, so the NetworkPolicy needs them "
        "named (pair with upstream_allowlist for the SSRF guard). JSON list.",
    )
    egress_except_cidrs: list[str] = Field(
        default_factory=forbidden.egress_except_v4,
        description="IPv4 ranges BYO routers may not reach (private, CGNAT, link-local and "
        "cloud metadata, from the product's forbidden-address table); add the pod/service "
        "CIDRs if they are not private. JSON list.",
    )
    egress_except_cidrs_v6: list[str] = Field(
        default_factory=forbidden.egress_except_v6,
        description="IPv6 ranges BYO routers may not reach (ULA, link-local, AWS metadata, "
        "NAT64 images of the refused IPv4 ranges). JSON list.",
    )
    egress_ports: list[int] = Field(
        default_factory=lambda: [443],
        description="TCP ports BYO routers may reach on the internet (providers speak "
        "HTTPS). JSON list; add e.g. 80 or 8443 for a provider on another port.",
    )
    egress_extra_except_cidrs: list[str] = Field(
        default_factory=list,
        description="More ranges (IPv4 or IPv6) BYO routers may not reach, added to the two "
        "lists above: the API server's public endpoint (EKS/GKE/AKS endpoints are public "
        "addresses), pod/service CIDRs that are not private. JSON list.",
    )
    dns_namespace: str = Field(
        default="kube-system",
        description="Namespace of the cluster DNS: the only DNS peer of router pods.",
    )
    dns_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"},
        description="Pod labels of the cluster DNS in BYOLLM_DNS_NAMESPACE. JSON.",
    )
    credentials_probe_enabled: bool = Field(
        default=True, description="Check keys against the provider's /models endpoint."
    )
    credentials_probe_period: float = Field(
        default=3600.0, description="Seconds between credential re-checks of one LLMConfig."
    )
    credentials_probe_timeout: float = Field(
        default=10.0, description="Seconds before a credentials check counts as Unreachable."
    )
    probe_resolve: dict[str, str] = Field(
        default_factory=dict,
        description="Like curl --resolve: hostname -> IP for the credentials probe (split-horizon "
        "DNS, tests; key * matches any host). The SSRF guard still checks the address. JSON.",
    )
    resync_period: float = Field(
        default=300.0,
        description="Seconds between safety-net reconciles of every LLMConfig (writes only "
        "on drift).",
    )
    reconcile_workers: int = Field(
        default=6,
        ge=1,
        description="Reconcile worker threads (fixed; the work queue orders what they take).",
    )
    shards: int = Field(
        default=1,
        ge=1,
        description="Tenant shards (by CRC-32 of the namespace), one Lease each; above 1, "
        "every replica reconciles the shards it holds instead of one leader doing all.",
    )
    sealing_secret: str = Field(
        default="byollm-sealing-key", description="Secret holding the sealing private key(s)."
    )
    sealing_public_configmap: str = Field(
        default="byollm-sealing-public-key",
        description="ConfigMap publishing the sealing public key.",
    )
    leader_election: bool = Field(
        default=True, description="Run only while holding the Lease (several replicas)."
    )
    lease_name: str = Field(
        default="byollm-operator", description="coordination.k8s.io Lease in BYOLLM_NAMESPACE."
    )
    lease_duration: int = Field(
        default=15, description="Seconds a follower waits on a silent leader before taking over."
    )
    lease_renew_deadline: int = Field(
        default=10, description="Seconds the leader keeps trying to renew before it stops."
    )
    lease_retry_period: int = Field(
        default=2, description="Seconds between Lease renewals/acquisition attempts."
    )
    liveness_endpoint: str = Field(
        default="", description="e.g. http://0.0.0.0:8081/healthz; empty disables."
    )
