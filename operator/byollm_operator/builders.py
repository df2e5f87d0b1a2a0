"""Pure builders: an LLMConfig spec (plus the resolved key) in, child manifests out.

No I/O here, so every rule about what a tenant's router sees is unit-tested without a
cluster: the router contract in the ``<name>-llm`` Secret, the config hash that rolls the
pods, the restricted pod, and the NetworkPolicy. ownerReferences are added here too, so
the manifests are exactly what server-side apply sends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from pydantic import SecretStr

from byollm.api import LLMConfigSpec
from byollm_operator.settings import Settings
from byollm_router import contract
from byollm_router.contract import Mode, ProviderType, RouterEnv, RoutingTable

FIELD_MANAGER: Final = "byollm-operator"
CONFIG_HASH_ANNOTATION: Final = "byollm.io/config-hash"
LABEL_CONFIG: Final = "byollm.io/llmconfig"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "byollm-operator"
TOKEN_KEY: Final = "token"
ROUTER_CONTAINER: Final = "router"
ROUTER_COMMAND: Final = (
    "byollm-router",
    "--host",
    "0.0.0.0",  # noqa: S104 - the router listens on the pod IP; the NetworkPolicy gates it
    "--port",
    str(contract.ROUTER_PORT),
)
DEFAULT_RESOURCES: Final = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
RUN_AS_USER: Final = 65532
# A terminating router pod keeps serving for its drain period (5 s, preStop GET /drainz)
# while kube-proxy (and every other node's Service rules) stop sending it new connections;
# then uvicorn finishes in-flight requests (up to 10 s), well within the grace period.
TERMINATION_GRACE_SECONDS: Final = 30


@dataclass(frozen=True)
class Owner:
    """The LLMConfig the children belong to."""

    name: str
    namespace: str
    uid: str


def llm_secret_name(name: str) -> str:
    return f"{name}-llm"


def token_secret_name(name: str) -> str:
    return f"{name}-router-token"


def router_name(name: str) -> str:
    return f"{name}-router"


def endpoint(name: str, namespace: str) -> str:
    """The OpenAI-compatible base URL the tenant's agent calls."""
    return f"http://{router_name(name)}.{namespace}.svc:{contract.ROUTER_PORT}/v1"


def labels(name: str, component: str) -> dict[str, str]:
    """Labels on every child: the operator watches its children by ``managed-by``."""
    return {
        "app.kubernetes.io/name": "byollm-router",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "byollm",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: component,
        LABEL_CONFIG: name,
    }


def selector(name: str) -> dict[str, str]:
    """Pod selector of the router; immutable on the Deployment, so kept minimal."""
    return {"app.kubernetes.io/name": "byollm-router", LABEL_CONFIG: name}


def _meta(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner.name, component),
        "ownerReferences": [
            {
                "apiVersion": "byollm.io/v1alpha1",
                "kind": "LLMConfig",
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def router_env(spec: LLMConfigSpec, api_key: str | None, settings: Settings) -> dict[str, str]:
    """Exactly the router contract for this spec (the ``<name>-llm`` Secret's content).

    BYO: LLM_MODE and the four BYO keys (+ routing, azure version). Managed (mode Managed or
    active false): LLM_MODE, BYOLLM_MANAGED_URL, the platform's default model and category
    table (settings); the four BYO keys are absent.
    """
    mode = spec.serving_mode()
    if mode is not Mode.BYO:
        # The tenant's models name its own provider's catalogue; on the shared LiteLLM the
        # platform's table applies (the tenant's auto switch is kept).
        managed = RoutingTable(auto=spec.routing.auto, models=dict(settings.managed_routing))
        return RouterEnv(
            mode=mode,
            managed_url=settings.managed_url,
            managed_model=settings.managed_model or None,
            routing=managed if managed.auto or managed.models else None,
        ).to_env()
    table = RoutingTable(auto=spec.routing.auto, models=spec.routing.models.by_category())
    routing = table if table.auto or table.models else None
    provider = spec.provider
    if provider is None or provider.default_model is None or not api_key:
        raise ValueError("BYO needs spec.provider, defaultModel and a resolved API key")
    azure_version = None
    if provider.type is ProviderType.AZURE:
        azure = provider.azure
        azure_version = azure.api_version if azure else contract.DEFAULT_AZURE_API_VERSION
    return RouterEnv(
        mode=mode,
        provider=provider.type,
        base_url=provider.effective_base_url(),
        api_key=SecretStr(api_key),
        model=provider.default_model,
        azure_api_version=azure_version,
        routing=routing,
        upstream_allowlist=settings.upstream_allowlist or None,
    ).to_env()


def config_hash(env: dict[str, str], token: str | None = None) -> str:
    """sha256 over everything the router reads; the key and the router token (read at
    start-up, so a new one must roll the pods) enter only as their own sha256."""
    hashed = dict(env)
    if token:
        hashed[contract.BYOLLM_ROUTER_TOKEN] = token
    for secret in (contract.LLM_API_KEY, contract.BYOLLM_ROUTER_TOKEN):
        if secret in hashed:
            hashed[secret] = hashlib.sha256(hashed[secret].encode()).hexdigest()
    blob = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


CONFIG_FIELDS: Final[dict[str, str]] = {
    contract.LLM_MODE: "mode",
    contract.LLM_PROVIDER: "provider",
    contract.LLM_BASE_URL: "baseURL",
    contract.LLM_API_KEY: "key",
    contract.LLM_MODEL: "model",
    contract.LLM_ROUTING: "routing",
    contract.LLM_AZURE_API_VERSION: "azure.apiVersion",
    contract.BYOLLM_MANAGED_URL: "managedURL",
    contract.BYOLLM_UPSTREAM_ALLOWLIST: "upstreamAllowlist",
}
"""Router variable -> the field name a RollingOut Event shows for it (never its value)."""
ROUTER_TOKEN_FIELD: Final = "routerToken"


def changed_fields(old_env: dict[str, str], new_env: dict[str, str]) -> list[str]:
    """Names of the router config fields that differ (set, unset or changed), in a fixed
    order; values are compared here and never returned. An empty diff with a new config
    hash means the only other input changed: the router token."""
    names = [k for k in old_env.keys() | new_env.keys() if old_env.get(k) != new_env.get(k)]
    order = list(CONFIG_FIELDS)
    names.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    return [CONFIG_FIELDS.get(k, k) for k in names] or [ROUTER_TOKEN_FIELD]


def secret_env(secret: dict[str, Any] | None) -> dict[str, str]:
    """The router variables held by a live ``<name>-llm`` Secret (undecodable ones as-is)."""
    out: dict[str, str] = {}
    for k, v in ((secret or {}).get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode()
        except (ValueError, UnicodeDecodeError):
            out[k] = str(v)
    return out


def api_key_prefix(api_key: str | None) -> str | None:
    """First 8 characters of the key, never more: enough to recognise it, useless to use it."""
    return api_key[:8] if api_key else None


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _secret_meta(owner: Owner, name: str, component: str) -> dict[str, Any]:
    """A child Secret's metadata: also labelled so the operator's Secret watch (a
    server-side selector on ``byollm.io/llm-key``) sees it, with a value that does not opt
    it in as a key source."""
    meta = _meta(owner, name, component)
    meta["labels"] = {**meta["labels"], contract.LLM_KEY_LABEL: contract.LLM_KEY_LABEL_OPERATOR}
    return meta


def llm_secret(owner: Owner, env: dict[str, str]) -> dict[str, Any]:
    """The ``<name>-llm`` Secret: the router's whole config, read with envFrom."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _secret_meta(owner, llm_secret_name(owner.name), "config"),
        "type": "Opaque",
        "data": {k: _b64(v) for k, v in sorted(env.items())},
    }


def new_router_token() -> str:
    """A fresh random bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_secret(owner: Owner, token: str) -> dict[str, Any]:
    """The ``<name>-router-token`` Secret: created once, then left alone."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _secret_meta(owner, token_secret_name(owner.name), "token"),
        "type": "Opaque",
        "data": {TOKEN_KEY: _b64(token)},
    }


def deployment(
    owner: Owner, spec: LLMConfigSpec, cfg_hash: str, settings: Settings
) -> dict[str, Any]:
    """The router Deployment: restricted pod, envFrom the llm Secret, hash-annotated."""
    name = router_name(owner.name)
    resources = (
        spec.router.resources.model_dump(exclude_none=True, by_alias=True)
        if spec.router.resources
        else DEFAULT_RESOURCES
    )
    port = contract.ROUTER_PORT
    container = {
        "name": ROUTER_CONTAINER,
        "image": settings.router_image,
        "imagePullPolicy": settings.router_image_pull_policy,
        "command": list(ROUTER_COMMAND),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": llm_secret_name(owner.name)}}],
        "env": [
            {
                "name": contract.BYOLLM_ROUTER_TOKEN,
                "valueFrom": {
                    "secretKeyRef": {"name": token_secret_name(owner.name), "key": TOKEN_KEY}
                },
            },
            {"name": contract.BYOLLM_TENANT, "value": owner.namespace},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # The router drains (closes every connection after its response) and answers after
        # its drain period; SIGTERM follows, and uvicorn finishes in-flight requests.
        "lifecycle": {"preStop": {"httpGet": {"path": "/drainz", "port": "http"}}},
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(owner, name, "router"),
        "spec": {
            "replicas": spec.router.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(owner.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels(owner.name, "router"),
                    "annotations": {CONFIG_HASH_ANNOTATION: cfg_hash},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "enableServiceLinks": False,  # no injected *_SERVICE_HOST of LiteLLM etc.
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def service(owner: Owner) -> dict[str, Any]:
    """ClusterIP Service ``<name>-router`` on the router port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, router_name(owner.name), "router"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner.name),
            "ports": [
                {
                    "name": "http",
                    "port": contract.ROUTER_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def _dns_egress(settings: Settings) -> dict[str, Any]:
    """DNS to the cluster DNS pods only: a pod elsewhere that copies their labels gets none
    of the router's queries."""
    return {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": settings.dns_namespace}
                },
                "podSelector": {"matchLabels": dict(settings.dns_pod_labels)},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _internet_egress(settings: Settings) -> dict[str, Any]:
    """The internet on the providers' ports, minus the forbidden ranges and the API server."""
    v4 = list(settings.egress_except_cidrs)
    v6 = list(settings.egress_except_cidrs_v6)
    for cidr in settings.egress_extra_except_cidrs:
        (v6 if ":" in cidr else v4).append(cidr)
    return {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": v4}},
            {"ipBlock": {"cidr": "::/0", "except": v6}},
        ],
        "ports": [{"protocol": "TCP", "port": p} for p in settings.egress_ports],
    }


def network_policy(owner: Owner, spec: LLMConfigSpec, settings: Settings) -> dict[str, Any]:
    """Ingress only from spec.access.podSelector; egress by serving mode.

    BYO: cluster DNS, then the internet on the providers' ports except the forbidden ranges
    (so neither the platform namespace nor a metadata service nor the API server), plus the
    namespaces of in-cluster self-hosted models (``upstream_namespaces``). Managed: cluster
    DNS and the shared LiteLLM only.
    """
    selector_obj = spec.access.pod_selector.model_dump(exclude_none=True, by_alias=True)
    ingress = [
        {
            "from": [{"podSelector": selector_obj}],
            "ports": [{"protocol": "TCP", "port": contract.ROUTER_PORT}],
        }
    ]
    if spec.serving_mode() is Mode.BYO:
        egress: list[dict[str, Any]] = [_dns_egress(settings), _internet_egress(settings)]
        if settings.upstream_namespaces:
            egress.append(
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/metadata.name",
                                        "operator": "In",
                                        "values": sorted(settings.upstream_namespaces),
                                    }
                                ]
                            }
                        }
                    ]
                }
            )
    else:
        peer: dict[str, Any]
        if settings.managed_cidr:
            peer = {"ipBlock": {"cidr": settings.managed_cidr}}
        else:
            peer = {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": settings.managed_namespace}
                },
                "podSelector": {"matchLabels": dict(settings.managed_pod_labels)},
            }
        egress = [
            _dns_egress(settings),
            {"to": [peer], "ports": [{"protocol": "TCP", "port": settings.managed_port}]},
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(owner, router_name(owner.name), "router"),
        "spec": {
            "podSelector": {"matchLabels": selector(owner.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


@dataclass(frozen=True)
class Children:
    """Everything one reconcile applies (the token Secret is created separately, once)."""

    env: dict[str, str]
    config_hash: str
    llm_secret: dict[str, Any]
    deployment: dict[str, Any]
    service: dict[str, Any]
    network_policy: dict[str, Any]

    def in_apply_order(self) -> list[dict[str, Any]]:
        """Secret first, so new pods of a rollout find the new config."""
        return [self.llm_secret, self.service, self.network_policy, self.deployment]


def build(
    owner: Owner,
    spec: LLMConfigSpec,
    api_key: str | None,
    settings: Settings,
    token: str | None = None,
) -> Children:
    """All children of one LLMConfig (``token``: the current router token, for the hash)."""
    env = router_env(spec, api_key, settings)
    h = config_hash(env, token)
    return Children(
        env=env,
        config_hash=h,
        llm_secret=llm_secret(owner, env),
        deployment=deployment(owner, spec, h, settings),
        service=service(owner),
        network_policy=network_policy(owner, spec, settings),
    )
