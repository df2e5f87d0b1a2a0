"""Least privilege: the operator runs as user ``byollm-operator`` with exactly the RBAC of
``byollm_dev.rbac`` (which generates ``deploy/base/rbac.yaml``; the chart renders the
same rules, see test_chart.py), and that is enough to do its job and no more.

* ``test_operator_rbac_table``: the operator's own identity asks the API server
  (SelfSubjectAccessReview) about every verb/resource it is granted and about a list of
  things it must never do; the answers form ``docs/rbac.md`` (regenerated with
  ``BYOLLM_WRITE_DOCS=1``; the test fails if the committed table is stale).
* ``test_operator_does_its_job_as_itself``: an LLMConfig goes Ready, the audit log shows
  the children written by ``byollm-operator`` (not an admin), and the operator log holds
  no 403.
* ``test_router_pods_are_restricted``: router pods are admitted in a namespace enforcing
  the restricted Pod Security Standard, with no service account token and a read-only root
  filesystem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as k8s_config
from operator_helpers import child_paths, create_llmc, pods, wait_ready

from byollm.kube import Kube
from byollm_dev import rbac
from byollm_operator.builders import FIELD_MANAGER
from byollm_router.contract import LLM_KEY_LABEL

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rbac.md"
OPERATOR_NS = "byollm-system"
USER = "byollm-operator"
TENANT_NS = "tenant-x"  # any namespace: cluster-wide rules answer the same everywhere

# Why each granted (apiGroup, resource) is needed. A rule added to rbac.py without a
# reason here fails the test.
WHY: dict[tuple[str, str], str] = {
    ("byollm.io", "llmconfigs"): "watch every tenant's LLMConfig (the reconcile trigger); "
    "the spec is never written",
    ("byollm.io", "llmconfigs/status"): "write status: conditions, observedGeneration, "
    "apiKeyPrefix, endpoint, configHash",
    ("byollm.io", "llmconfigs/finalizers"): "children carry ownerReferences with "
    "blockOwnerDeletion, which needs this where OwnerReferencesPermissionEnforcement is on",
    ("", "secrets"): "read the tenant's key Secret (secretKeyRef) and watch it so rotation "
    "rolls the router; write `<name>-llm`, `<name>-router-token` and the sealing key. "
    "No delete: garbage collection removes children",
    ("", "services"): "server-side apply the `<name>-router` Service; watch it for drift",
    ("apps", "deployments"): "server-side apply the router Deployment; watch its rollout "
    "for RouterAvailable",
    ("networking.k8s.io", "networkpolicies"): "server-side apply the router NetworkPolicy "
    "(ingress from spec.access, egress by mode)",
    ("", "events"): "post Events for creations, rollouts, mode switches, wipes and errors",
    ("events.k8s.io", "events"): "post Events (events.k8s.io API)",
    ("coordination.k8s.io", "leases"): "leader election between operator replicas "
    "(own namespace only)",
    ("", "configmaps"): "publish the sealing public key (own namespace only)",
}

# (verb, group, resource, namespace or "" for cluster scope, why it must be refused)
MUST_NOT: list[tuple[str, str, str, str, str]] = [
    ("delete", "", "secrets", TENANT_NS, "children are garbage-collected; no Secret deleted"),
    ("deletecollection", "", "secrets", TENANT_NS, "no bulk deletion"),
    ("delete", "apps", "deployments", TENANT_NS, "garbage collection removes routers"),
    ("delete", "", "services", TENANT_NS, "garbage collection removes Services"),
    ("delete", "networking.k8s.io", "networkpolicies", TENANT_NS, "garbage collection"),
    ("create", "byollm.io", "llmconfigs", TENANT_NS, "tenants own their LLMConfigs"),
    ("update", "byollm.io", "llmconfigs", TENANT_NS, "never writes a spec"),
    ("patch", "byollm.io", "llmconfigs", TENANT_NS, "never writes a spec"),
    ("delete", "byollm.io", "llmconfigs", TENANT_NS, "never deletes a tenant's config"),
    ("create", "", "pods", TENANT_NS, "pods only through its Deployments"),
    ("create", "", "pods/exec", TENANT_NS, "no exec into any pod"),
    ("get", "", "pods/log", TENANT_NS, "no reading of pod logs"),
    ("list", "", "pods", "", "does not need pods"),
    ("create", "", "serviceaccounts/token", TENANT_NS, "cannot mint tokens"),
    ("create", "", "serviceaccounts", TENANT_NS, "routers run without a token"),
    ("list", "", "nodes", "", "no node access"),
    ("patch", "", "nodes", "", "no node access"),
    ("create", "", "namespaces", "", "no namespace management"),
    ("delete", "", "namespaces", "", "no namespace management"),
    ("get", "", "configmaps", "kube-system", "configmaps only in its own namespace"),
    ("update", "coordination.k8s.io", "leases", "kube-system", "no other component's lease"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "no RBAC writes"),
    ("create", "rbac.authorization.k8s.io", "rolebindings", TENANT_NS, "no RBAC writes"),
    ("create", "rbac.authorization.k8s.io", "roles", TENANT_NS, "no RBAC writes"),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "no privilege escalation"),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "no privilege escalation"),
    ("impersonate", "", "users", "", "no impersonation"),
    ("impersonate", "", "serviceaccounts", TENANT_NS, "no impersonation"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", "", "CRDs come from the chart"),
    ("update", "apiextensions.k8s.io", "customresourcedefinitions", "", "no CRD writes"),
    ("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "no webhooks"),
    ("create", "apps", "daemonsets", TENANT_NS, "only Deployments"),
    ("create", "batch", "jobs", TENANT_NS, "only Deployments"),
    ("update", "apps", "deployments/scale", TENANT_NS, "replicas come from the spec"),
    ("create", "certificates.k8s.io", "certificatesigningrequests", "", "no certificates"),
    ("list", "", "persistentvolumes", "", "no storage access"),
]


def _operator_kube(control_plane: Any) -> Kube:
    return Kube(
        k8s_config.new_client_from_config(config_file=str(control_plane.operator_kubeconfig)),
        FIELD_MANAGER,
    )


def _ssar(kube: Kube, verb: str, group: str, resource: str, namespace: str) -> bool:
    res, _, sub = resource.partition("/")
    attrs: dict[str, str] = {"verb": verb, "group": group, "resource": res}
    if sub:
        attrs["subresource"] = sub
    if namespace:
        attrs["namespace"] = namespace
    got = kube.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        },
    )
    return bool(got["status"].get("allowed"))


def _granted_rows() -> list[tuple[str, str, str, str, str]]:
    """(verb, group, resource, namespace, why) for every verb rbac.py grants."""
    rows = []
    for scope, rules in (("", rbac.CLUSTER_RULES), (OPERATOR_NS, rbac.NAMESPACE_RULES)):
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    why = WHY.get((group, resource))
                    assert why, f"rbac.py grants {group}/{resource} without a reason in WHY"
                    for verb in rule["verbs"]:
                        rows.append((verb, group, resource, scope, why))
    return rows


def _scope(ns: str) -> str:
    return "cluster-wide" if not ns else f"namespace `{ns}`"


def _res(group: str, resource: str) -> str:
    res, _, sub = resource.partition("/")
    return (f"{res}.{group}" if group else res) + (f"/{sub}" if sub else "")


# Granted because RBAC cannot scope Secrets by label: shown in the doc, not hidden.
RESIDUAL: list[tuple[str, str, str, str, str]] = [
    ("get", "", "secrets", "kube-system", "any namespace's Secrets are readable"),
    ("list", "", "secrets", "", "cluster-wide list/watch (the Secret index)"),
    ("patch", "", "secrets", "kube-system", "any namespace's Secrets are writable"),
]


def test_operator_rbac_table(control_plane: Any, crd: Any, kube: Kube) -> None:
    # The live grants are exactly rbac.py's, bound only to this user.
    live = kube.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{rbac.NAME}")
    assert live is not None
    assert live["rules"] == rbac.CLUSTER_RULES
    bindings = [
        f"{kind} {b['metadata'].get('namespace', '')}/{b['metadata']['name']}"
        for kind, p in (
            ("ClusterRoleBinding", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
            ("RoleBinding", "/apis/rbac.authorization.k8s.io/v1/rolebindings"),
        )
        for b in kube.list(p)
        for s in b.get("subjects") or []
        if s.get("name") == USER
    ]
    assert sorted(bindings) == sorted(
        [f"ClusterRoleBinding /{rbac.NAME}", f"RoleBinding {OPERATOR_NS}/{rbac.NAME}"]
    ), bindings

    me = _operator_kube(control_plane)
    try:
        granted = [(*row, _ssar(me, *row[:4])) for row in _granted_rows()]
        # Namespace-scoped grants stop at the operator's namespace.
        outside = [
            (v, g, r, TENANT_NS, "own namespace only", _ssar(me, v, g, r, TENANT_NS))
            for v, g, r, ns, _ in _granted_rows()
            if ns == OPERATOR_NS and v in ("get", "create", "update")
        ]
        refused = [(*row, _ssar(me, *row[:4])) for row in MUST_NOT]
        residual = [(*row, _ssar(me, *row[:4])) for row in RESIDUAL]
    finally:
        me.api.close()

    by_rule: dict[tuple[str, str, str, str], list[tuple[str, bool]]] = {}
    for v, g, r, ns, why, a in granted:
        by_rule.setdefault((g, r, ns, why), []).append((v, a))
    n_refused = len(outside) + len(refused)
    lines = [
        "# Operator RBAC",
        "",
        "Generated by `tests/integration/test_security_rbac.py` (`BYOLLM_WRITE_DOCS=1` rewrites "
        "it; the test fails when it is stale). Every cell is a SelfSubjectAccessReview asked "
        "by the operator's own identity (`byollm-operator`) on the real API server, holding "
        "exactly the rules of `byollm_dev/rbac.py` (= `deploy/base/rbac.yaml` = the "
        "chart); the operator runs as that identity in every integration test.",
        "",
        f"**{sum(a for *_, a in granted)}/{len(granted)} granted verbs allowed; "
        f"{sum(not a for *_, a in outside + refused)}/{n_refused} forbidden requests refused.**",
        "",
        "## Granted, and why",
        "",
        "| resource | scope | verbs (allowed) | why |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{_res(g, r)}` | {_scope(ns)} | "
        + ", ".join(v if a else f"**{v} DENIED**" for v, a in verbs)
        + f" | {why} |"
        for (g, r, ns, why), verbs in by_rule.items()
    ]
    lines += [
        "",
        "## Refused: what the operator must not do",
        "",
        "| verb | resource | scope | allowed | why not |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {v} | `{_res(g, r)}` | {_scope(ns)} | {'**YES**' if a else 'no'} | {why} |"
        for v, g, r, ns, why, a in outside + refused
    ]
    lines += [
        "",
        "## Residual risk",
        "",
        "| verb | resource | scope | allowed | note |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {v} | `{_res(g, r)}` | {_scope(ns)} | {'yes' if a else 'no'} | {why} |"
        for v, g, r, ns, why, a in residual
    ]
    lines += [
        "",
        "Kubernetes RBAC cannot restrict by label or by a list of names that changes at run "
        "time, so reading a tenant's key Secret from any namespace means `get/list/watch "
        "secrets` cluster-wide (including `kube-system`), and writing the router config means "
        "`create/patch/update secrets` cluster-wide. The operator never deletes anything, and "
        "its pod runs restricted with a read-only root filesystem. Platforms that keep "
        "tenants in a known set of namespaces can bind the ClusterRole with per-namespace "
        "RoleBindings instead of the ClusterRoleBinding.",
        "",
        "What the operator does with that access is narrower than RBAC: it reads a key only "
        'from a Secret labelled `byollm.io/llm-key: "true"` (an LLMConfig naming any other '
        "Secret gets `SecretSynced=False`, reason `SecretNotOptedIn`, and the Secret's data is "
        "never read), and its list and watch of Secrets carry a label selector on "
        "`byollm.io/llm-key` (its own child Secrets carry it with the value `operator`), so "
        "the API server sends it no other Secret of the cluster.",
        "",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    assert all(a for *_, a in granted), "a granted rule is not effective"
    assert not any(a for *_, a in outside + refused), "the operator may do something it must not"
    if os.environ.get("BYOLLM_WRITE_DOCS") == "1" or not DOC.exists():
        DOC.write_text(table)
    assert DOC.read_text() == table, "docs/rbac.md is stale: rerun with BYOLLM_WRITE_DOCS=1"


def _audit_writers(log_dir: Path, ns: str) -> dict[str, set[str]]:
    """resource -> usernames that created/patched it in ``ns`` (from the audit log)."""
    out: dict[str, set[str]] = {}
    for line in (log_dir / "audit.log").read_text().splitlines():
        ev = json.loads(line)
        ref = ev.get("objectRef") or {}
        if ref.get("namespace") != ns or ev.get("verb") not in ("create", "patch", "update"):
            continue
        if not str(ev.get("responseStatus", {}).get("code", "")).startswith("2"):
            continue
        res = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
        out.setdefault(res, set()).add(ev["user"]["username"])
    return out


def test_operator_does_its_job_as_itself(
    control_plane: Any, kube: Kube, running_operator: Any, namespace: str
) -> None:
    assert Path(running_operator.kubeconfig) == Path(control_plane.operator_kubeconfig)
    ns = namespace
    kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        body={
            "metadata": {"name": "k", "labels": {LLM_KEY_LABEL: "true"}},
            "stringData": {"apiKey": "sk-rbac-test-000000000000"},
        },
    )
    create_llmc(
        kube,
        ns,
        "rbac",
        {
            "mode": "BYO",
            "provider": {
                "type": "openrouter",
                "defaultModel": "m",
                "apiKey": {"secretKeyRef": {"name": "k"}},
            },
        },
    )
    wait_ready(kube, ns, "rbac")
    writers = _audit_writers(Path(control_plane.log_dir), ns)
    print(f"\nwriters in {ns}: {writers}")
    for res in ("secrets", "services", "networkpolicies", "deployments", "llmconfigs/status"):
        assert USER in writers.get(res, set()), (res, writers)
    # Everything the operator wrote, it wrote as itself; the admin wrote only the test input.
    assert writers["llmconfigs/status"] == {USER}
    assert writers["deployments"] <= {
        USER,
        "system:serviceaccount:kube-system:deployment-controller",
    }
    # No RBAC denial all session (403s for namespaces being deleted are not RBAC).
    denied = f'forbidden: User "{USER}" cannot'
    assert denied not in running_operator.log(), "the operator hit an RBAC denial"


def test_router_pods_are_restricted(kube: Kube, running_operator: Any, namespace: str) -> None:
    ns_obj = kube.get(f"/api/v1/namespaces/{namespace}")
    assert ns_obj is not None
    assert ns_obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    create_llmc(kube, namespace, "psa", {"mode": "Managed", "router": {"replicas": 2}})
    wait_ready(kube, namespace, "psa")  # RouterAvailable: the pods were admitted and run
    dep = kube.get(child_paths(namespace, "psa")["deployment"])
    assert dep is not None
    running = pods(kube, namespace, "psa")
    assert len(running) == 2
    for pod in running:
        spec = pod["spec"]
        assert pod["status"]["phase"] == "Running"
        assert spec["automountServiceAccountToken"] is False
        assert not any("serviceAccountToken" in yaml.safe_dump(v) for v in spec.get("volumes", []))
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
            assert not any(m.startswith("/var/run/secrets/kubernetes.io") for m in mounts), mounts
    events = kube.list(f"/api/v1/namespaces/{namespace}/events")
    assert not [e for e in events if e["reason"] == "FailedCreate"], "a router pod was refused"
