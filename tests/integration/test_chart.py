"""The Helm chart and the kustomize base: lint, render, schema-validate, install for real.

Tools are built pinned from their Go modules by ``hack/tools.sh`` (cached). Schema
validation uses kubeconform (strict) with schemas generated from the real API server's
OpenAPI -- kubeconform cannot download here -- so CRD-backed kinds (LLMConfig) are checked
too. ``helm install`` goes onto the real control plane.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_schemas import SCHEMA_LOCATION, write_schemas
from kubernetes import client
from stubs.tools import tool

from byollm_dev import rbac
from byollm_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "byollm"
KUBE_VERSION = "1.36.3"
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}


@pytest.fixture(scope="session")
def helm() -> str:
    return tool("helm")


@pytest.fixture(scope="session")
def kubeconform() -> str:
    return tool("kubeconform")


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/byollm-helm/cache"}
    env.update(
        {"HELM_CONFIG_HOME": "/tmp/byollm-helm/config", "HELM_DATA_HOME": "/tmp/byollm-helm/data"}
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, **kw)


def template(helm: str, *args: str, crds: bool = False) -> list[dict[str, Any]]:
    cmd = [
        helm,
        "template",
        "byollm",
        str(CHART),
        "-n",
        "byollm-system",
        "--kube-version",
        KUBE_VERSION,
    ]
    if crds:
        cmd.append("--include-crds")
    res = _run([*cmd, *args])
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def kustomize(overlay: str) -> list[dict[str, Any]]:
    res = _run(["kubectl", "kustomize", str(ROOT / "deploy" / overlay)])
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# --- no cluster needed -------------------------------------------------------------------


def test_helm_lint(helm: str) -> None:
    res = _run([helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION])
    assert res.returncode == 0, res.stdout + res.stderr
    res = _run(
        [
            helm,
            "lint",
            str(CHART),
            "--strict",
            "--kube-version",
            KUBE_VERSION,
            "--set",
            "serviceMonitor.enabled=true",
        ]
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"managed": {"url": "not a url"}}, "url"),
        ({"upstreamAllowlist": "ollama.svc"}, "upstreamAllowlist"),
        ({"egress": {"extraExceptCIDRs": ["10.0.0.0"]}}, "extraExceptCIDRs"),
        ({"serviceMonitor": {"enabled": "yes"}}, "enabled"),
        ({"replicas": 2}, "replicas"),  # a typo of replicaCount: unknown keys are refused
    ],
)
def test_bad_values_refused_naming_the_field(
    helm: str, tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    res = _run([helm, "template", "x", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(f)])
    assert res.returncode != 0
    assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert field in res.stderr, res.stderr


def test_rbac_is_the_one_source(helm: str) -> None:
    """The chart's rules are rbac.py's rules (deploy/base/rbac.yaml is generated from it)."""
    docs = template(helm)
    (cr,) = by_kind(docs, "ClusterRole")
    (role,) = by_kind(docs, "Role")
    assert cr["rules"] == rbac.CLUSTER_RULES
    assert role["rules"] == rbac.NAMESPACE_RULES
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "byollm-operator", "namespace": "byollm-system"}
        ]


def test_operator_pod_is_restricted_and_env_is_settings(helm: str) -> None:
    values = ["--set", "upstreamAllowlist={ollama.models.svc.cluster.local,10.96.0.0/12}"]
    (dep,) = by_kind(template(helm, *values), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == "health"
    env = {e["name"]: e["value"] for e in c["env"]}
    fields = set(Settings.model_fields)
    for name in env:
        assert name.removeprefix("BYOLLM_").lower() in fields, f"{name} is not an operator setting"
    # The operator's own settings parser accepts exactly what the chart renders.
    old = dict(os.environ)
    try:
        os.environ.update(env)
        s = Settings()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert s.upstream_allowlist == "ollama.models.svc.cluster.local,10.96.0.0/12"
    assert s.router_image == "byollm/router:0.1.0"
    assert s.managed_pod_labels == {"app.kubernetes.io/name": "litellm"}
    assert "10.0.0.0/8" in s.egress_except_cidrs  # the built-in table, not chart values
    assert s.egress_ports == [443]
    assert s.dns_namespace == "kube-system"
    assert s.namespace == "byollm-system"


def _normalise(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))

    def strip(meta: dict[str, Any]) -> None:
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in HELM_LABELS}
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)

    strip(doc["metadata"])
    if doc["kind"] == "Deployment":
        strip(doc["spec"]["template"]["metadata"])
    return doc


def test_kustomize_base_renders_the_chart(helm: str) -> None:
    chart = {(d["kind"], d["metadata"]["name"]): _normalise(d) for d in template(helm, crds=True)}
    base = {
        (d["kind"], d["metadata"]["name"]): _normalise(d)
        for d in kustomize("base")
        if d["kind"] != "Namespace"  # helm install --create-namespace / the platform's
    }
    assert sorted(chart) == sorted(base)
    for key in chart:
        assert chart[key] == base[key], key


def test_overlays_change_what_they_say(helm: str) -> None:
    dev = {d["kind"]: d for d in kustomize("overlays/dev")}
    prod = {d["kind"]: d for d in kustomize("overlays/production")}
    dc = dev["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert dev["Deployment"]["spec"]["replicas"] == 1
    assert dc["image"] == "byollm/operator:dev"
    assert {e["name"]: e["value"] for e in dc["env"]}["BYOLLM_LEADER_ELECTION"] == "false"
    assert len(dc["env"]) == len(
        by_kind(template(helm), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    )
    assert prod["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert prod["Deployment"]["spec"]["template"]["spec"]["topologySpreadConstraints"]


# --- on the real control plane --------------------------------------------------------------


@pytest.fixture(scope="session")
def schema_dir(
    control_plane: Any, crd: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """kubeconform schemas from this API server's /openapi/v2 (LLMConfig included)."""
    openapi = control_plane.request("/openapi/v2")
    out = tmp_path_factory.mktemp("schemas")
    assert write_schemas(openapi, out) > 100
    assert (out / "byollm.io" / "v1alpha1" / "llmconfig.json").exists()
    return out


def kubeconform_check(
    kubeconform: str, schema_dir: Path, docs: list[dict[str, Any]], *extra: str
) -> str:
    res = _run(
        [
            kubeconform,
            "-strict",
            "-summary",
            "-schema-location",
            SCHEMA_LOCATION.format(dir=schema_dir),
            *extra,
            "-",
        ],
        input=yaml.safe_dump_all(docs),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.mark.cluster
def test_rendered_manifests_pass_kubeconform(helm: str, kubeconform: str, schema_dir: Path) -> None:
    out = kubeconform_check(kubeconform, schema_dir, template(helm, crds=True))
    assert "Invalid: 0, Errors: 0" in out, out
    # ServiceMonitor is prometheus-operator's CRD, not installed here: skipped by kind.
    docs = template(helm, "--set", "serviceMonitor.enabled=true", "--set", "extraEnv[0].name=X")
    out = kubeconform_check(kubeconform, schema_dir, docs, "-skip", "ServiceMonitor")
    assert "Skipped: 1" in out, out
    for overlay in ("base", "overlays/dev", "overlays/production"):
        out = kubeconform_check(kubeconform, schema_dir, kustomize(overlay))
        assert "Invalid: 0, Errors: 0" in out, out


@pytest.mark.cluster
def test_kubeconform_catches_a_broken_manifest(
    helm: str, kubeconform: str, schema_dir: Path
) -> None:
    """The validator is not a rubber stamp: a misspelt field fails strict validation."""
    (dep,) = by_kind(template(helm), "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    res = _run(
        [kubeconform, "-strict", "-schema-location", SCHEMA_LOCATION.format(dir=schema_dir), "-"],
        input=yaml.safe_dump(dep),
    )
    assert res.returncode != 0
    assert "readinessProbes" in res.stdout, res.stdout


@pytest.fixture
def release(control_plane: Any, k8s_api: Any) -> Iterator[dict[str, str]]:
    """A fresh namespace (restricted PSS) and unique object names for one release."""
    suffix = secrets.token_hex(3)
    ns = f"chart-{suffix}"
    client.CoreV1Api(k8s_api).create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=ns, labels={"pod-security.kubernetes.io/enforce": "restricted"}
            )
        )
    )
    yield {
        "namespace": ns,
        "name": f"byollm-op-{suffix}",
        "kubeconfig": str(control_plane.kubeconfig),
    }
    client.CoreV1Api(k8s_api).delete_namespace(ns)


@pytest.mark.cluster
def test_helm_install_on_the_real_control_plane(
    helm: str, release: dict[str, str], k8s_api: Any, crd: dict[str, Any]
) -> None:
    ns, name = release["namespace"], release["name"]
    res = _run(
        [
            helm,
            "install",
            "byollm",
            str(CHART),
            "-n",
            ns,
            "--kubeconfig",
            release["kubeconfig"],
            "--set",
            f"fullnameOverride={name}",
            "--set",
            "upstreamAllowlist={ollama.models.svc.cluster.local}",
            "--wait",
            "--timeout",
            "90s",
        ]
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "byollm seal" in res.stdout  # NOTES.txt
    try:
        apps, rbac_api = client.AppsV1Api(k8s_api), client.RbacAuthorizationV1Api(k8s_api)
        dep = apps.read_namespaced_deployment(name, ns)
        assert dep.status.ready_replicas == 2  # admitted under restricted PSS, Running on kwok
        assert client.CoreV1Api(k8s_api).read_namespaced_service_account(name, ns)
        assert rbac_api.read_cluster_role(name).rules
        assert rbac_api.read_cluster_role_binding(name).subjects[0].namespace == ns
        assert rbac_api.read_namespaced_role(name, ns).rules
        assert rbac_api.read_namespaced_role_binding(name, ns)
        # Least privilege, as the API server's authorizer sees it.
        authz = client.AuthorizationV1Api(k8s_api)

        def can(verb: str, resource: str, group: str = "", sub: str = "", where: str = "") -> bool:
            review = client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=f"system:serviceaccount:{ns}:{name}",
                    groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
                    resource_attributes=client.V1ResourceAttributes(
                        verb=verb, resource=resource, group=group, subresource=sub, namespace=where
                    ),
                )
            )
            return bool(authz.create_subject_access_review(review).status.allowed)

        assert can("patch", "llmconfigs", "byollm.io", "status", "tenant-a")
        assert can("create", "deployments", "apps", where="tenant-a")
        assert can("update", "leases", "coordination.k8s.io", where=ns)
        assert not can("update", "llmconfigs", "byollm.io", where="tenant-a")
        assert not can("delete", "secrets", where="tenant-a")
        assert not can("update", "leases", "coordination.k8s.io", where="kube-system")
        assert not can("create", "pods", where="tenant-a")
    finally:
        res = _run([helm, "uninstall", "byollm", "-n", ns, "--kubeconfig", release["kubeconfig"]])
        assert res.returncode == 0, res.stderr
