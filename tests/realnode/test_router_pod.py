"""A router pod from its image on a real kubelet: Ready, chat through its Service to a stub
provider pod in another namespace, and the container's security as the host sees it."""

from __future__ import annotations

import time
from pathlib import Path

import realnode_helpers as h
from operator_helpers import create_llmc, wait_ready

from byollm.kube import path


def test_router_pod_ready_and_chat_through_service(platform) -> None:
    """LLMConfig -> router pod Ready from its image; the openai SDK in a client pod of the
    tenant chats (plain and streaming) through the router's Service with a stub provider
    that runs as a pod in another namespace."""
    ns = platform.tenant()
    for stub, key in h.STUB_KEYS.items():
        platform.key_secret(ns, f"key-{stub}", key)
    t0 = time.monotonic()
    create_llmc(platform.kube, ns, "acme", platform.byo_spec("stub-a", "m-ready", "key-stub-a"))
    pod = platform.ready_router_pod(ns)
    ready_s = time.monotonic() - t0
    wait_ready(platform.kube, ns, "acme", timeout=60)
    h.report(f"realnode: LLMConfig apply -> router pod Ready {ready_s:.1f}s")
    assert pod["spec"]["containers"][0]["image"] == platform.router_image
    assert pod["spec"]["nodeName"] == "byollm-realnode"

    got = platform.chat_from_client(ns)
    assert got["plain"] == "echo: hello pod"
    assert got["model"] == "m-ready"
    assert got["fp"] == "fp_stub-a"  # the stub provider pod in llm-provider answered
    assert got["stream"] == "echo: stream please"
    assert got["chunks"] >= 3
    assert got["stream_fp"] == "fp_stub-a"


def _status_fields(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def test_router_container_security_from_the_host(platform) -> None:
    """uid 65532, no capabilities, no new privileges, seccomp filter, read-only root
    filesystem and the 256Mi memory limit, all read from the host's /proc and cgroups."""
    ns = platform.byo_tenant()
    pod = platform.ready_router_pod(ns)
    pid = platform.pid(pod)
    st = _status_fields(pid)
    assert st["Uid"].split() == ["65532"] * 4
    assert st["Gid"].split() == ["65532"] * 4
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, f"{cap}={st[cap]}"
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"  # SECCOMP_MODE_FILTER: the runtime's default profile
    root_mount = next(
        line.split()
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        if line.split()[4] == "/"
    )
    assert "ro" in root_mount[5].split(","), root_mount
    cgroup = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if line.split(":", 2)[1] == "memory"
    )
    limit = Path("/sys/fs/cgroup/memory", cgroup.lstrip("/"), "memory.limit_in_bytes")
    assert int(limit.read_text()) == 256 * 1024 * 1024
    # Service links are off: only the API server's own variables (which the kubelet always
    # sets) name a Service; and no service account token is mounted.
    env = [e.split(b"=", 1)[0] for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")]
    links = [e for e in env if e.endswith(b"_SERVICE_HOST")]
    assert links == [b"KUBERNETES_SERVICE_HOST"], links
    assert not Path(f"/proc/{pid}/root/var/run/secrets/kubernetes.io").exists()


def test_sigkill_restarts_router_and_router_available_follows(platform) -> None:
    """SIGKILL of the router process: the kubelet restarts the container, the pod is Ready
    again and the LLMConfig's RouterAvailable condition is True."""
    import os
    import signal

    from operator_helpers import condition, llmc_path, wait_for

    ns = platform.byo_tenant()
    pod = platform.ready_router_pod(ns)
    name = pod["metadata"]["name"]
    pid = platform.pid(pod)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        p = platform.kube.get(path("v1", "Pod", ns, name)) or {}
        statuses = (p.get("status") or {}).get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 1 and bool(
            h.pod_ready(platform.kube, ns, name)
        )

    wait_for("router container restarted and Ready", restarted, timeout=120)
    h.report(
        f"realnode: SIGKILL -> router container restarted and Ready {time.monotonic() - t0:.1f}s"
    )
    assert platform.pid(platform.ready_router_pod(ns)) != pid

    def available() -> bool:
        obj = platform.kube.get(llmc_path(ns, "acme"))
        return condition(obj, "RouterAvailable").get("status") == "True"

    wait_for("RouterAvailable True", available, timeout=60)
