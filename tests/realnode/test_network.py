"""NetworkPolicy enforced with packets (kube-router), and the node's network safety net."""

from __future__ import annotations

import subprocess

import realnode_helpers as h
from operator_helpers import OPERATOR_NS, llmc_path, patch_spec, wait_for, wait_ready

from byollm.kube import path
from byollm_dev import realnode

BLOCKED = {"refused", "timeout"}


def _blocked(result: dict[str, str]) -> bool:
    return bool(result) and set(result.values()) <= BLOCKED


def _pod_ip(platform, ns: str, name: str) -> str:
    pod = platform.kube.get(path("v1", "Pod", ns, name))
    return str(pod["status"]["podIP"])


def test_network_policy_enforced_with_packets(platform) -> None:
    """Ingress: a client pod of the tenant (app=agent) reaches the router; a pod of another
    namespace, and an unlabelled pod of the tenant, are refused by the policy. BYO egress: the stub
    provider's namespace (named in upstream_namespaces) is reachable; the stand-in LiteLLM
    in the platform namespace, the node's address (the API server's host) and another
    tenant's router are not. Managed egress: the stand-in LiteLLM and nothing else."""
    ns = platform.byo_tenant()
    other = platform.byo_tenant()
    router = platform.ready_router_pod(ns)
    router_ip = router["status"]["podIP"]
    other_router_ip = platform.ready_router_pod(other)["status"]["podIP"]
    litellm_ip = _pod_ip(platform, OPERATOR_NS, "litellm")
    stub_ip = _pod_ip(platform, h.PROVIDER_NS, "stub-a")
    svc_ip = h.service_ip(platform.kube, ns, "acme-router")

    agent = platform.client_pod(ns, "agent")
    stranger = platform.client_pod(ns, "stranger", {"app": "other"})
    outsider = platform.client_pod(other, "outsider", {"app": "agent"})
    assert h.tcp_probe(agent, [(router_ip, 8080), (svc_ip, 8080)]) == {
        f"{router_ip}:8080": "open",
        f"{svc_ip}:8080": "open",
    }
    assert _blocked(h.tcp_probe(stranger, [(router_ip, 8080)]))
    assert _blocked(h.tcp_probe(outsider, [(router_ip, 8080), (svc_ip, 8080)]))

    router_pid = platform.pid(router)
    byo = h.tcp_probe(
        router_pid,
        [
            (stub_ip, 8080),
            (litellm_ip, 4000),
            (realnode.NODE_IP, 6443),
            (other_router_ip, 8080),
        ],
    )
    # Every target listens (the node address: the API server's forwarder), so anything but
    # "open" is the policy: kube-router rejects (refused) or drops (timeout).
    assert byo.pop(f"{stub_ip}:8080") == "open", byo
    assert _blocked(byo), byo

    patch_spec(platform.kube, ns, "acme", {"mode": "Managed"})
    wait_ready(platform.kube, ns, "acme", timeout=120)

    def managed_pod():
        pods = platform.router_pods(ns)
        ok = [
            p
            for p in pods
            if h.pod_ready(platform.kube, ns, p["metadata"]["name"])
            and p["metadata"]["uid"] != router["metadata"]["uid"]
        ]
        return ok[0] if len(pods) == 1 and ok else None

    managed = wait_for("Managed router pod", managed_pod, timeout=120)
    got = h.tcp_probe(
        platform.pid(managed),
        [(litellm_ip, 4000), (stub_ip, 8080), (other_router_ip, 8080), (realnode.NODE_IP, 6443)],
    )
    assert got.pop(f"{litellm_ip}:4000") == "open", got
    assert _blocked(got), got
    assert platform.kube.get(llmc_path(ns, "acme"))["status"]["mode"] == "Managed"


def _counter(chain: str, *match: str, table: str = "filter") -> int:
    """Packets counted by the rule of ``chain`` whose spec has ``match`` (``-S -v`` form)."""
    out = subprocess.run(
        ["iptables", "-w", "-t", table, "-v", "-S", chain],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["-A"] and all(m in words for m in match) and "-c" in words:
            return int(words[words.index("-c") + 1])
    raise AssertionError(f"no rule with {match!r} in {chain}:\n{out}")


def test_network_safety_net(platform) -> None:
    """A pod has no default route, so an address off the bridge is unreachable at once and
    no packet leaves; with a default route forced into its netns, the raw guard drops its
    packets, and counting rules in FORWARD and OUTPUT see nothing for that address."""
    ns = platform.tenant()
    pid = platform.client_pod(ns)
    routes = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ip", "-4", "route"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "default" not in routes, routes
    assert realnode.SERVICE_CIDR in routes
    off_bridge = "203.0.113.7"  # TEST-NET-3: documentation only, never a real host
    # A counting DROP behind the guard, and one in OUTPUT: they must stay at zero. They live
    # in the mangle table, which kube-router's periodic rewrite of the filter table leaves
    # alone (a chain of ours in filter can vanish between two iptables calls).
    leak = ["iptables", "-w", "-t", "mangle"]
    subprocess.run([*leak, "-N", "BYOLLM-TEST-LEAK"], check=True)
    try:
        subprocess.run(
            [*leak, "-A", "BYOLLM-TEST-LEAK", "-d", off_bridge, "-j", "DROP"],
            check=True,
        )
        subprocess.run([*leak, "-I", "FORWARD", "1", "-j", "BYOLLM-TEST-LEAK"], check=True)
        subprocess.run([*leak, "-A", "OUTPUT", "-j", "BYOLLM-TEST-LEAK"], check=True)
        guard_before = _counter(realnode.GUARD_CHAIN, "-i", "DROP", table="raw")
        assert h.tcp_probe(pid, [(off_bridge, 443)]) == {f"{off_bridge}:443": "unreachable"}
        # Force a default route via the bridge (as a compromised pod with NET_ADMIN could).
        subprocess.run(
            [
                "nsenter",
                "-t",
                str(pid),
                "-n",
                "ip",
                "route",
                "add",
                "default",
                "via",
                realnode.NODE_IP,
            ],
            check=True,
        )
        assert h.tcp_probe(pid, [(off_bridge, 443)], timeout=1.5) == {
            f"{off_bridge}:443": "timeout"
        }
        assert _counter(realnode.GUARD_CHAIN, "-i", "DROP", table="raw") > guard_before
        assert _counter("BYOLLM-TEST-LEAK", "DROP", table="mangle") == 0
        # An unmatched service address stays on the bridge too (never the default route).
        unmatched = "10.96.255.254"
        assert h.tcp_probe(pid, [(unmatched, 80)], timeout=1.5) == {f"{unmatched}:80": "timeout"}
        wait_for(
            "no leak",
            lambda: _counter("BYOLLM-TEST-LEAK", "DROP", table="mangle") == 0,
            timeout=1,
        )
    finally:
        subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "ip", "route", "del", "default"], check=False
        )
        subprocess.run([*leak, "-D", "FORWARD", "-j", "BYOLLM-TEST-LEAK"], check=False)
        subprocess.run([*leak, "-D", "OUTPUT", "-j", "BYOLLM-TEST-LEAK"], check=False)
        subprocess.run([*leak, "-F", "BYOLLM-TEST-LEAK"], check=False)
        subprocess.run([*leak, "-X", "BYOLLM-TEST-LEAK"], check=False)
    # The host route of the service CIDR is the bridge's, not the default route's.
    host_route = subprocess.run(
        ["ip", "route", "get", "10.96.255.254"], capture_output=True, text=True, check=True
    ).stdout
    assert f"dev {realnode.BRIDGE}" in host_route, host_route
