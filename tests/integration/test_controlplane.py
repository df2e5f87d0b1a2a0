"""The test control plane is a real one: pods get scheduled, rollouts finish, Secrets are
encrypted at rest, RBAC applies to the operator identity."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster


def _wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s")


def test_deployment_rolls_out_on_kwok_nodes(k8s_api: Any, namespace: str) -> None:
    apps, core = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api)
    labels = {"app": "web"}
    restricted = client.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=65532,
        allow_privilege_escalation=False,
        capabilities=client.V1Capabilities(drop=["ALL"]),
        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
    )
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(
                                name="web",
                                image="example.invalid/web:1",
                                security_context=restricted,
                            )
                        ]
                    ),
                ),
            ),
        ),
    )

    def available() -> bool:
        dep = apps.read_namespaced_deployment_status("web", namespace)
        return bool(dep.status.available_replicas == 3 and dep.status.updated_replicas == 3)

    _wait(available)
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    assert {p.status.phase for p in pods} == {"Running"}
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)


def test_secret_is_encrypted_at_rest_in_etcd(
    control_plane: Any, k8s_api: Any, namespace: str
) -> None:
    canary = "canary-plaintext-7f3a9c"
    client.CoreV1Api(k8s_api).create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"apiKey": canary}),
    )
    raw = control_plane.etcd_get(f"/registry/secrets/{namespace}/s")
    assert raw.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert canary.encode() not in raw
    # and a non-Secret object is stored in clear (proves we read the real value)
    client.CoreV1Api(k8s_api).create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": canary}),
    )
    assert canary.encode() in control_plane.etcd_get(f"/registry/configmaps/{namespace}/c")


def test_operator_identity_is_not_admin(control_plane: Any) -> None:
    """The operator identity authenticates but has only what RBAC grants it: never nodes."""
    api = config.new_client_from_config(config_file=str(control_plane.operator_kubeconfig))
    try:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(api).list_node()
        assert exc.value.status == 403
        assert "byollm-operator" in exc.value.body
    finally:
        api.close()


def test_restricted_namespace_refuses_privileged_pod(k8s_api: Any, namespace: str) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="root"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x.invalid/c")]),
    )
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(k8s_api).create_namespaced_pod(namespace, pod)
    assert exc.value.status == 403
    assert "restricted" in exc.value.body
