"""SSRF guard: decide which upstream addresses a tenant's router may connect to.

A tenant chooses its provider's base URL, so the URL is hostile input: it could aim the
router (which sits inside the cluster) at the cloud metadata service, the Kubernetes API,
the platform's shared LiteLLM or any pod. The guard is used twice:

* statically (``check_url``): by the operator at admission time and by the router at
  start-up, on literal addresses, odd numeric spellings, schemes and userinfo;
* at connect time (``resolve_and_check``, used by the router's upstream client and by
  ``build_transport``, the httpx transport of the operator's credentials probe): every
  new connection resolves the host once, refuses it if *any* resolved address is
  blocked, then connects to the approved address itself. The socket is opened to the
  address that was checked, so DNS rebinding between check and connect cannot switch it,
  while SNI, certificate verification and the Host header keep the original hostname.

Redirects are never followed by the router's client; even if they were, each hop goes
through this transport again.

The module imports only the standard library, httpx and httpcore, so both the router
(which must stay free of kopf/kubernetes) and the operator can use it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpcore
import httpx

from byollm_router import forbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``; injectable so tests can simulate DNS rebinding."""


class GuardError(Exception):
    """An upstream refused by the SSRF guard.

    The message names the host and the reason only; it never holds a URL's path, query or
    userinfo (where keys hide), so it is safe in logs, status conditions and responses.
    """

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"upstream host {host!r} refused by SSRF guard: {reason}")


# --- address classification -----------------------------------------------------------


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def _table(blocks: tuple[forbidden.Block, ...]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(b.cidr), b.reason) for b in blocks)


# (network, reason), first match wins; the ranges and reasons live in byollm_router.forbidden.
_METADATA: Final = _table(forbidden.METADATA)
_V4_TABLE: Final = _table(forbidden.IPV4)
_V6_TABLE: Final = _table(forbidden.IPV6)
_V6_MAPPED: Final = ipaddress.ip_network(forbidden.IPV4_MAPPED)
_V6_COMPAT: Final = ipaddress.ip_network(forbidden.IPV4_COMPATIBLE)
_V6_NAT64: Final = ipaddress.ip_network(forbidden.NAT64)
_V6_6TO4: Final = ipaddress.ip_network(forbidden.SIX_TO_FOUR)
_V6_GLOBAL: Final = ipaddress.ip_network(forbidden.GLOBAL_UNICAST_V6)

ALWAYS_BLOCKED: Final = frozenset(b.reason for b in forbidden.all_blocks() if b.always)
"""Reasons the allowlist cannot override."""


def _strip_scope(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(int(ip))  # the integer drops the %zone
    return ip


def _classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is one."""
    ip = _strip_scope(ip)
    for net, reason in _METADATA:
        if ip.version == net.version and ip in net:
            return reason
    if isinstance(ip, ipaddress.IPv4Address):
        return next((reason for net, reason in _V4_TABLE if ip in net), None)
    for net, reason in _V6_TABLE:
        if ip in net:
            return reason
    if ip in _V6_MAPPED:
        inner = _classify(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return "metadata" if inner == "metadata" else "ipv4-mapped"
    if ip in _V6_COMPAT:
        return "ipv4-compat"
    if ip in _V6_NAT64 or ip in _V6_6TO4:
        # DNS64 in IPv6-only clusters maps public IPv4 hosts into 64:ff9b::/96, so these
        # are legitimate; judge them by the IPv4 address they carry.
        v4 = (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            if ip in _V6_NAT64
            else ip.sixtofour or ipaddress.IPv4Address(0)
        )
        inner = _classify(v4)
        via = "nat64" if ip in _V6_NAT64 else "6to4"
        return None if inner is None else f"{inner} (embedded in {via})"
    if ip not in _V6_GLOBAL:
        return "reserved"
    return None


def check_ip(ip: IPAddress, allow: Allowlist) -> str | None:
    """None if the router may connect to ``ip``, else the reason it may not."""
    if allow.refuses_ip(ip):
        return "cluster-internal"
    reason = _classify(ip)
    if reason is None:
        return None
    if reason.split(" ")[0] in ALWAYS_BLOCKED:
        return reason
    if allow.admits_ip(ip):
        return None
    return reason


# --- host literals --------------------------------------------------------------------

_NUMERIC_LABEL: Final = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _normalise_host(host: str) -> str:
    """Lower-case, NFKC-fold (full-width digits), unify dots, drop brackets and one trailing dot."""
    h = unicodedata.normalize("NFKC", host).translate(_DOTS).strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]
    return h


def _parse_ipv4_number(label: str) -> int | None:
    lab = label.lower()
    try:
        if lab.startswith("0x"):
            return int(lab[2:] or "0", 16)
        if len(lab) > 1 and lab.startswith("0"):
            return int(lab, 8)
        return int(lab, 10)
    except ValueError:
        return None


def _parse_inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """IPv4 as ``inet_aton``/getaddrinfo/browsers accept it: 1-4 parts, dec/oct/hex each."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_LABEL.match(p) for p in parts):
        return None
    nums = [_parse_ipv4_number(p) for p in parts]
    if any(n is None for n in nums):
        return None
    values = [n for n in nums if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    total = 0
    for n in head:
        total = total * 256 + n
    total = total * 256 ** (5 - len(values)) + last
    return ipaddress.IPv4Address(total)


def parse_host_literal(host: str) -> IPAddress | None:
    """The address a host string denotes if it is an IP literal in any spelling, else None.

    Recognises what resolvers and browsers accept: ``2130706433``, ``0177.0.0.1``,
    ``0x7f.1``, ``127.1``, full-width digits and ideographic dots, ``[::1]``, zone ids
    (``fe80::1%25eth0``), and IPv4 embedded in IPv6 (``::ffff:127.0.0.1``).
    """
    h = _normalise_host(urllib.parse.unquote(host))
    if ":" in h:
        addr, _, zone = h.partition("%")
        try:
            return ipaddress.IPv6Address(f"{addr}%{zone}" if zone else addr)
        except ValueError:
            return None
    return _parse_inet_aton(h)


def _looks_numeric(host: str) -> bool:
    """True if a resolver might read ``host`` as a number (WHATWG: last label numeric)."""
    h = _normalise_host(host)
    return bool(h) and bool(_NUMERIC_LABEL.match(h.rsplit(".", 1)[-1]))


# --- allowlist ------------------------------------------------------------------------


def _in_any(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    ip = _strip_scope(ip)
    return any(ip.version == n.version and ip in n for n in networks)


_LABEL: Final = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME: Final = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")


@dataclass(frozen=True)
class Allowlist:
    """Upstreams the operator admits despite the guard: in-cluster self-hosted models.

    Parsed from ``BYOLLM_UPSTREAM_ALLOWLIST``: comma- or space-separated hostnames
    (``ollama.models.svc.cluster.local``, or ``*.models.svc.cluster.local`` for any
    subdomain), IP addresses and CIDRs (``10.96.0.0/12``). An allowlisted hostname may
    use http and may resolve to any address except metadata/unspecified/multicast; an
    allowlisted CIDR admits the addresses in it.
    """

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = field(default=())
    never: tuple[IPNetwork, ...] = field(default=())
    """The cluster's API server addresses: refused whatever the entries above say."""

    @classmethod
    def parse(cls, text: str | None, api_server: str | None = None) -> Allowlist:
        """Parse the env string; a malformed entry raises ValueError naming it.

        ``api_server`` is the API server's Service address (``KUBERNETES_SERVICE_HOST``,
        which the kubelet sets in every pod): never a model, whatever the allowlist says.
        """
        never = parse_host_literal(api_server) if api_server else None
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in re.split(r"[,\s]+", text or ""):
            entry = raw.strip()
            if not entry:
                continue
            literal = parse_host_literal(entry) if "/" not in entry else None
            if literal is not None:
                networks.append(ipaddress.ip_network(_strip_scope(literal)))
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = _normalise_host(entry)
            if not _HOSTNAME.match(name) or _looks_numeric(name):
                raise ValueError(f"invalid allowlist entry {entry!r}: not a hostname or CIDR")
            if name.startswith("*."):
                suffixes.append(name[1:])
            else:
                hosts.add(name)
        refused = (ipaddress.ip_network(_strip_scope(never)),) if never is not None else ()
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks), refused)

    def admits_host(self, host: str) -> bool:
        h = _normalise_host(host)
        return h in self.hosts or any(h.endswith(s) for s in self.suffixes)

    def admits_ip(self, ip: IPAddress) -> bool:
        return _in_any(ip, self.networks)

    def refuses_ip(self, ip: IPAddress) -> bool:
        return _in_any(ip, self.never)

    def admits(self, host: str) -> bool:
        """True if ``host`` (name or literal) is covered by the allowlist."""
        literal = parse_host_literal(host)
        return self.admits_ip(literal) if literal is not None else self.admits_host(host)

    def __str__(self) -> str:
        items = [*sorted(self.hosts), *(f"*{s}" for s in self.suffixes)]
        return ",".join([*items, *(str(n) for n in self.networks)])


EMPTY_ALLOWLIST: Final = Allowlist()

# --- static URL check -----------------------------------------------------------------

METADATA_HOSTNAMES: Final = forbidden.METADATA_HOSTNAMES
LOOPBACK_HOSTNAMES: Final = forbidden.LOOPBACK_HOSTNAMES
CLUSTER_HOSTNAMES: Final = forbidden.CLUSTER_HOSTNAMES
_FORBIDDEN_URL_CHARS: Final = re.compile(r"[\x00-\x20\x7f\\]")


def _host_reason(host: str, allow: Allowlist) -> str | None:
    """Static verdict on a host (no DNS): None if it may proceed to resolution."""
    h = _normalise_host(urllib.parse.unquote(host))
    if not h:
        return "empty host"
    if "%" in host and parse_host_literal(host) is None:
        return "percent-encoded hostname"
    if h in METADATA_HOSTNAMES:
        return "metadata"
    literal = parse_host_literal(h)
    if literal is not None:
        return check_ip(literal, allow)
    if "" in h.split("."):
        return "malformed hostname (empty label)"
    # The API server under any cluster domain: no allowlist entry (*.svc.cluster.local) opens it.
    if h in CLUSTER_HOSTNAMES or h.startswith(forbidden.CLUSTER_HOSTNAME_PREFIX):
        return "cluster-internal"
    if allow.admits_host(h):
        return None
    if _looks_numeric(h):
        return "malformed numeric address"
    if h in LOOPBACK_HOSTNAMES or h.endswith(".localhost"):
        return "loopback"
    return None


def check_url(url: str | httpx.URL, allow: Allowlist) -> None:
    """Static check of an upstream URL; raises GuardError. Pure: no DNS, no I/O.

    https only (http only for allowlisted hosts), no userinfo, no literal or numerically
    disguised blocked address, no metadata or localhost names. Hostnames that resolve
    inside the cluster are caught at connect time by ``resolve_and_check``.
    """
    raw = str(url)
    if _FORBIDDEN_URL_CHARS.search(raw):
        raise GuardError("?", "URL contains whitespace, control characters or backslashes")
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(raw)
    except httpx.InvalidURL:
        # Say what the host would have been to a laxer parser (e.g. an octal 0177.0.0.1).
        try:
            lax_host = urllib.parse.urlsplit(raw).hostname or ""
        except ValueError:
            lax_host = ""
        lax = _host_reason(lax_host, allow) if lax_host else None
        raise GuardError(
            lax_host or "?", "not a valid URL" + (f"; host is {lax}" if lax else "")
        ) from None
    host = parsed.raw_host.decode("ascii", "replace")  # what is resolved (IDNA A-labels)
    if parsed.scheme not in ("https", "http"):
        raise GuardError(host or "?", f"scheme {parsed.scheme!r} not allowed (https only)")
    try:
        netloc = urllib.parse.urlsplit(raw).netloc
    except ValueError:
        raise GuardError(host or "?", "not a valid URL") from None
    if parsed.userinfo or "@" in netloc:
        raise GuardError(host or "?", "userinfo in URL not allowed")
    if not host:
        raise GuardError("?", "URL has no host")
    reason = _host_reason(host, allow)
    if reason is not None:
        raise GuardError(host, reason)
    if parsed.scheme == "http" and not allow.admits(host):
        raise GuardError(host, "plain http is only allowed for allowlisted hosts")


Admitted = set[tuple[bytes, bytes, int | None, bytes]]


def admit(url: httpx.URL, allow: Allowlist, admitted: Admitted) -> None:
    """``check_url``, remembered: the static verdict depends only on the scheme, host, port
    and userinfo (a router talks to one upstream, so this saves the parse on every
    request). DNS is still checked for every new connection."""
    key = (url.raw_scheme, url.raw_host, url.port, url.userinfo)
    if key not in admitted:
        check_url(url, allow)
        if len(admitted) >= 256:
            admitted.clear()
        admitted.add(key)


# --- connect-time check ---------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's getaddrinfo (threaded, non-blocking)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_and_check(
    host: str, port: int, allow: Allowlist, resolver: Resolver | None = None
) -> list[str]:
    """Resolve ``host`` and return the approved addresses; GuardError if ANY is blocked.

    One blocked answer refuses the whole host: a name that resolves both outside and
    inside (a rebinding or split-horizon trick) is hostile.
    """
    reason = _host_reason(host, allow)
    if reason is not None:
        raise GuardError(host, reason)
    literal = parse_host_literal(host)
    if literal is not None:
        return [str(_strip_scope(literal))]
    answers = await (resolver or system_resolver)(host, port)
    if not answers:
        raise GuardError(host, "does not resolve")
    host_allowed = allow.admits_host(host)
    approved: list[str] = []
    for answer in answers:
        try:
            ip = ipaddress.ip_address(answer)
        except ValueError:
            raise GuardError(host, "resolver returned a non-address") from None
        reason = check_ip(ip, allow)
        if reason is not None and (not host_allowed or reason.split(" ")[0] in ALWAYS_BLOCKED):
            raise GuardError(host, f"resolves to {ip} ({reason})")
        approved.append(str(_strip_scope(ip)))
    return approved


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, checks, and connects to the checked IP.

    httpcore hands ``connect_tcp`` the URL's hostname; TLS is started afterwards by the
    connection with ``server_hostname`` = that hostname, so pinning the socket to the
    approved IP keeps SNI and certificate verification on the name.
    """

    def __init__(
        self,
        allowlist: Allowlist,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow = allowlist
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                approved = await resolve_and_check(host, port, self._allow, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
        last: Exception | None = None
        for ip in approved:
            try:
                return await self._inner.connect_tcp(
                    ip,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise GuardError("unix socket", "unix sockets are not allowed upstreams")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose every request and connection passes the guard."""

    def __init__(
        self,
        allowlist: Allowlist,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        verify: ssl.SSLContext | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        ctx = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        super().__init__(verify=ctx, http1=http1, http2=http2, limits=limits)
        self.allowlist = allowlist
        self._admitted: Admitted = set()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ctx,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=GuardedNetworkBackend(allowlist, resolver, network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        admit(request.url, self.allowlist, self._admitted)
        return await super().handle_async_request(request)


def build_transport(
    allowlist: Allowlist,
    *,
    resolver: Resolver | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    **httpx_transport_kwargs: Any,
) -> GuardedTransport:
    """An httpx transport through the guard (the operator's credentials probe; use
    ``follow_redirects=False``).

    Accepts ``httpx.AsyncHTTPTransport``'s keyword arguments except ``proxy`` and ``uds``,
    which would bypass the connect-time check. ``resolver`` replaces getaddrinfo (tests:
    simulated DNS and rebinding); ``network_backend`` is the backend that opens sockets
    to the approved addresses (default anyio; tests record where sockets go).
    """
    for kwarg in ("proxy", "uds"):
        if httpx_transport_kwargs.get(kwarg) is not None:
            raise TypeError(f"{kwarg!r} would bypass the SSRF guard")
        httpx_transport_kwargs.pop(kwarg, None)
    return GuardedTransport(
        allowlist, resolver=resolver, network_backend=network_backend, **httpx_transport_kwargs
    )


async def check_upstream(url: str, allow: Allowlist, resolver: Resolver | None = None) -> list[str]:
    """Both halves without connecting: ``check_url``, then resolve the host and check every
    answer. For the operator's admission check and status condition on hostnames that
    resolve inside the cluster; the router still re-checks (and pins) at connect time."""
    check_url(url, allow)
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return await resolve_and_check(parsed.host, port, allow, resolver)
