"""Where no tenant may aim a router: one table of addresses and names.

A tenant chooses its provider's base URL, so the URL is hostile input. This table is the
one source for every layer that refuses it: the CRD's CEL rules (``byollm.api``, at
``kubectl apply``), the SSRF guard (``byollm_router.guard``, at start-up and connect
time) and the NetworkPolicy of BYO routers (``byollm_operator``, in the kernel). Plain
data and the standard library only: the operator, the SDK and the router all import it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Block:
    """A refused range.

    ``reason`` is the guard's word for it; ``always`` means no allowlist entry can open it
    (cloud credential endpoints: no self-hosted model lives there); ``crd`` that the CEL
    rules refuse it as a literal in ``baseURL`` (ranges CEL's ``isGlobalUnicast`` already
    refuses are left out, to keep the rule within the API server's cost budget);
    ``egress`` that BYO routers' NetworkPolicy excepts it from internet egress.
    """

    cidr: str
    reason: str
    always: bool = False
    crd: bool = True
    egress: bool = True


# Cloud credential and host-agent endpoints, checked before everything else and never
# admitted by the allowlist (even 0.0.0.0/0 or ::/0). Those inside a range listed below
# need no CRD or egress entry of their own.
METADATA: Final = (
    Block("169.254.169.254/32", "metadata", always=True, crd=False, egress=False),  # IMDS
    Block("169.254.170.2/32", "metadata", always=True, crd=False, egress=False),  # ECS tasks
    Block("169.254.170.23/32", "metadata", always=True, crd=False, egress=False),  # EKS Pod Id
    Block("169.254.169.253/32", "metadata", always=True, crd=False, egress=False),  # AWS DNS
    Block("169.254.169.123/32", "metadata", always=True, crd=False, egress=False),  # AWS NTP
    Block("100.100.100.200/32", "metadata", always=True, crd=False, egress=False),  # Alibaba
    Block("192.0.0.192/32", "metadata", always=True, crd=False, egress=False),  # Oracle Cloud
    Block("168.63.129.16/32", "metadata", always=True),  # Azure WireServer: a public address
    Block("fd00:ec2::/32", "metadata", always=True, crd=False, egress=False),  # AWS over IPv6
)

# IPv4 by the IANA special-purpose registry; first match wins.
IPV4: Final = (
    Block("255.255.255.255/32", "broadcast", always=True, crd=False, egress=False),
    Block("0.0.0.0/8", "unspecified", always=True),  # Linux connects 0.0.0.0 to localhost
    Block("127.0.0.0/8", "loopback"),
    Block("10.0.0.0/8", "private"),
    Block("172.16.0.0/12", "private"),
    Block("192.168.0.0/16", "private"),
    Block("100.64.0.0/10", "cgnat"),
    # Link-local holds every cloud's metadata service: no allowlist opens it.
    Block("169.254.0.0/16", "link-local", always=True),
    Block("224.0.0.0/4", "multicast", always=True, crd=False, egress=False),
    Block("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    Block("192.0.2.0/24", "reserved", crd=False, egress=False),  # TEST-NET-1
    Block("198.51.100.0/24", "reserved", crd=False, egress=False),  # TEST-NET-2
    Block("203.0.113.0/24", "reserved", crd=False, egress=False),  # TEST-NET-3
    Block("192.88.99.0/24", "reserved", crd=False, egress=False),  # 6to4 relay anycast
    Block("198.18.0.0/15", "reserved"),  # benchmarking; often internal fake-IP DNS
    Block("240.0.0.0/4", "reserved", egress=False),
)

# IPv6; first match wins. Addresses embedding IPv4 (mapped, compatible, NAT64, 6to4,
# Teredo) are judged by the guard by the address they carry; the CRD refuses them as
# literals outright.
IPV6: Final = (
    Block("::/128", "unspecified", always=True, crd=False, egress=False),
    Block("::1/128", "loopback", crd=False, egress=False),
    Block("ff00::/8", "multicast", always=True, crd=False, egress=False),
    Block("fe80::/10", "link-local", always=True),
    Block("fec0::/10", "site-local"),
    Block("fc00::/7", "unique-local"),
    Block("64:ff9b:1::/48", "private", crd=False),  # local-use NAT64
    Block("2001::/32", "teredo"),
    Block("2001:db8::/32", "reserved", crd=False, egress=False),
    Block("3fff::/20", "reserved", crd=False, egress=False),
    Block("100::/64", "reserved", crd=False, egress=False),
    Block("2001:2::/48", "reserved", crd=False, egress=False),
)
IPV4_MAPPED: Final = "::ffff:0:0/96"
IPV4_COMPATIBLE: Final = "::/96"
NAT64: Final = "64:ff9b::/96"
SIX_TO_FOUR: Final = "2002::/16"
GLOBAL_UNICAST_V6: Final = "2000::/3"

# Literal forms the CRD refuses besides the table (embedded IPv4 can carry any address).
_CRD_EMBEDDING: Final = (IPV4_COMPATIBLE, SIX_TO_FOUR, NAT64)

# Names refused whatever they resolve to, each also with the DNS root's trailing dot.
METADATA_HOSTNAMES: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
LOOPBACK_HOSTNAMES: Final = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "localhost6",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ip6-loopback",
    }
)
# The cluster's own API server, under any cluster domain (kubernetes.default.svc.<domain>).
CLUSTER_HOSTNAMES: Final = frozenset(
    {
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
)
CLUSTER_HOSTNAME_PREFIX: Final = "kubernetes.default.svc."

# Hosts that may be reached over plain http: in-cluster Services (self-hosted models).
IN_CLUSTER_SUFFIXES: Final = (".svc", ".svc.cluster.local")


def all_blocks() -> tuple[Block, ...]:
    return METADATA + IPV4 + IPV6


def crd_cidrs() -> tuple[str, ...]:
    """Literal ranges the CRD refuses in ``baseURL`` (CEL ``cidr(...).containsIP``)."""
    return tuple(b.cidr for b in all_blocks() if b.crd) + _CRD_EMBEDDING


def forbidden_hostnames() -> tuple[str, ...]:
    """Names the CRD and the guard refuse, with and without the trailing dot."""
    names = METADATA_HOSTNAMES | LOOPBACK_HOSTNAMES | CLUSTER_HOSTNAMES
    return tuple(sorted(names | {n + "." for n in names}))


def egress_except_v4() -> list[str]:
    """IPv4 ranges a BYO router's NetworkPolicy keeps it from (inside 0.0.0.0/0)."""
    return [b.cidr for b in METADATA + IPV4 if b.egress and ":" not in b.cidr]


def egress_except_v6() -> list[str]:
    """IPv6 ranges a BYO router's NetworkPolicy keeps it from (inside ::/0).

    NAT64 (64:ff9b::/96) is how IPv6-only clusters reach IPv4 providers, so it stays open,
    except for the images of the refused IPv4 ranges: a NAT64 gateway must not carry a
    router into private IPv4 space.
    """
    v6 = [b.cidr for b in METADATA + IPV6 if b.egress and ":" in b.cidr]
    nat64 = ipaddress.ip_network(NAT64)
    for cidr in egress_except_v4():
        v4 = ipaddress.ip_network(cidr)
        base = ipaddress.IPv6Address(int(nat64.network_address) | int(v4.network_address))
        v6.append(f"{base}/{96 + v4.prefixlen}")
    return v6
