"""Helpers of the real-node tests: pods of the test platform, packets from inside pods."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from operator_helpers import wait_for

from byollm.kube import Kube, KubeError, path

ROOT = Path(__file__).resolve().parents[2]
STUB_SOURCE = ROOT / "tests" / "stubs" / "provider.py"
PROVIDER_NS = "llm-provider"
PLATFORM_NS = "byollm-system"
STUB_KEYS = {"stub-a": "sk-stub-a-0123456789", "stub-b": "sk-stub-b-0123456789"}
REPORT: list[str] = []
# The official openai SDK, plain and streaming, from inside a pod's netns; prints JSON.
CHAT = """
    import json, openai
    client = openai.OpenAI(base_url={url!r}, api_key={token!r}, max_retries=0, timeout=30)
    plain = client.chat.completions.create(
        model="", messages=[{{"role": "user", "content": "hello pod"}}])
    chunks = list(client.chat.completions.create(
        model="", messages=[{{"role": "user", "content": "stream please"}}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    print(json.dumps({{
        "plain": plain.choices[0].message.content, "model": plain.model,
        "fp": plain.system_fingerprint, "stream": text, "chunks": len(chunks),
        "stream_fp": chunks[-1].system_fingerprint}}))
"""


def report(line: str) -> None:
    """A figure for the closing summary (pod-Ready times, switch latencies...)."""
    REPORT.append(line)


def apply(kube: Kube, doc: dict[str, Any]) -> dict[str, Any]:
    return kube.apply(doc, field_manager="byollm-realnode-tests")


def namespace(kube: Kube, name: str, labels: dict[str, str] | None = None) -> None:
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"byollm.io/test": "true", **(labels or {})}},
        },
    )


def pod_ready(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    pod = kube.get(path("v1", "Pod", ns, name))
    conds = ((pod or {}).get("status") or {}).get("conditions") or []
    ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    return pod if ok else None


def stub_pod(
    kube: Kube,
    ns: str,
    name: str,
    image: str,
    port: int,
    labels: dict[str, str],
    args: list[str],
) -> dict[str, Any]:
    """The stub provider (tests/stubs/provider.py) as a pod, run by the router image's
    Python, plus a Service ``name`` on ``port``. Returns the Ready pod."""
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "stub-provider", "namespace": ns},
            "data": {"provider.py": STUB_SOURCE.read_text()},
        },
    )
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"stub": name, **labels}},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "stub",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": [
                            "python",
                            "/stub/provider.py",
                            "--host",
                            "0.0.0.0",
                            "--port",
                            str(port),
                            "--name",
                            name,
                            *args,
                        ],
                        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
                        "volumeMounts": [{"name": "src", "mountPath": "/stub"}],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
                "volumes": [{"name": "src", "configMap": {"name": "stub-provider"}}],
            },
        },
    )
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"stub": name}, "ports": [{"port": port, "targetPort": port}]},
        },
    )
    pod: dict[str, Any] = wait_for(f"{ns}/{name} Ready", lambda: pod_ready(kube, ns, name), 90)
    return pod


def idle_pod(kube: Kube, ns: str, name: str, image: str, labels: dict[str, str]) -> dict[str, Any]:
    """A pod that only sleeps (the sandbox image): tests send packets from its netns."""
    apply(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 1,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                "containers": [{"name": "idle", "image": image, "imagePullPolicy": "Never"}],
            },
        },
    )
    pod: dict[str, Any] = wait_for(f"{ns}/{name} Ready", lambda: pod_ready(kube, ns, name), 60)
    return pod


def service_ip(kube: Kube, ns: str, name: str) -> str:
    svc = kube.get(path("v1", "Service", ns, name))
    assert svc is not None, f"no Service {ns}/{name}"
    return str(svc["spec"]["clusterIP"])


def secret_value(kube: Kube, ns: str, name: str, key: str) -> str:
    obj = kube.get(path("v1", "Secret", ns, name)) or {}
    return base64.b64decode((obj.get("data") or {})[key]).decode()


def in_netns(pid: int, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` (this venv's interpreter, so the openai SDK is there) inside the
    network namespace of host process ``pid`` (a pod's container): its packets are the
    pod's packets, subject to the node's NetworkPolicy and routes."""
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def popen_in_netns(pid: int, code: str, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as f:
        return subprocess.Popen(
            ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", textwrap.dedent(code)],
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def tcp_probe(pid: int, targets: list[tuple[str, int]], timeout: float = 2.0) -> dict[str, str]:
    """From the netns of ``pid``: "open" | "refused" | "timeout" | "unreachable" per target."""
    code = f"""
        import errno, json, socket
        out = {{}}
        for host, port in {targets!r}:
            s = socket.socket()
            s.settimeout({timeout})
            try:
                s.connect((host, port))
                out[f"{{host}}:{{port}}"] = "open"
            except socket.timeout:
                out[f"{{host}}:{{port}}"] = "timeout"
            except ConnectionRefusedError:
                out[f"{{host}}:{{port}}"] = "refused"
            except OSError as e:
                out[f"{{host}}:{{port}}"] = "unreachable" if e.errno in (
                    errno.ENETUNREACH, errno.EHOSTUNREACH) else f"error {{e.errno}}"
            finally:
                s.close()
        print(json.dumps(out))
    """
    proc = in_netns(pid, code, timeout=timeout * len(targets) + 30)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def container_id(pod: dict[str, Any]) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    assert statuses, f"no container in {pod['metadata']}"
    assert statuses[0].get("containerID"), f"no container ID in {pod['metadata']}"
    return str(statuses[0]["containerID"])


def wait_gone(kube: Kube, resource_path: str, timeout: float = 60) -> None:
    def gone() -> bool:
        try:
            return kube.get(resource_path) is None
        except KubeError:
            return False

    wait_for(f"{resource_path} deleted", gone, timeout)


def now() -> float:
    return time.time()
