"""The SSRF guard's decisions, as pure functions: no socket is opened in this file."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm_router.guard import (
    Allowlist,
    GuardError,
    check_ip,
    check_url,
    parse_host_literal,
    resolve_and_check,
)

try:
    from tests.unit import ssrf_table
except ImportError:  # pytest's rootdir-less import mode
    import ssrf_table  # type: ignore[no-redef]

NONE = Allowlist.parse("")


# --- the table: every attempt blocked, every control admitted -------------------------


def test_at_least_forty_attempts() -> None:
    assert len(ssrf_table.ATTEMPTS) >= 40
    assert len({a.url for a in ssrf_table.ATTEMPTS}) == len(ssrf_table.ATTEMPTS)


@pytest.mark.parametrize("attempt", ssrf_table.ATTEMPTS, ids=lambda a: a.form)
def test_attempt_blocked(attempt: ssrf_table.Attempt) -> None:
    verdict = ssrf_table.evaluate(attempt)
    assert verdict.blocked, attempt


@pytest.mark.parametrize("control", ssrf_table.CONTROLS, ids=lambda a: a.form)
def test_control_admitted(control: ssrf_table.Attempt) -> None:
    assert not ssrf_table.evaluate(control).blocked, control


def test_docs_table_is_current() -> None:
    """docs/ssrf.md is generated; regenerate with ``python -m tests.unit.ssrf_table --write``."""
    table = ssrf_table.render()
    assert ssrf_table.DOC.read_text() == "# SSRF attempts against the guard\n\n" + table, (
        "run: python -m tests.unit.ssrf_table --write"
    )


# --- host literal parsing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("127.0.0.1.", "127.0.0.1"),
        ("%31%32%37.0.0.1", "127.0.0.1"),
        ("\uff11\uff12\uff17.0.0.1", "127.0.0.1"),
        ("127\u30020\u30020\u30021", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[::127.0.0.1]", "::7f00:1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
        ("[FE80::1%eth0]", "fe80::1%eth0"),
        ("64:ff9b::169.254.169.254", "64:ff9b::a9fe:a9fe"),
    ],
)
def test_parse_host_literal(host: str, expected: str) -> None:
    assert str(parse_host_literal(host)) == expected


@pytest.mark.parametrize(
    "host",
    [
        "api.openai.com",
        "1.2.3.4.5",
        "256.0.0.1",
        "08.0.0.1",
        "0x1g.0.0.1",
        "127..1",
        "",
        "4294967296",
        "1.16777216",
        "[::1",
        "not:an:ip",
    ],
)
def test_parse_host_literal_rejects(host: str) -> None:
    assert parse_host_literal(host) is None


# --- check_ip -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.255.255", "private"),
        ("100.64.0.0", "cgnat"),
        ("100.127.255.255", "cgnat"),
        ("169.254.0.1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fdff::1", "unique-local"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:8.8.8.8", "ipv4-mapped"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::8.8.8.8", "ipv4-compat"),
        ("ff02::1", "multicast"),
        ("2001::1", "teredo"),
        ("64:ff9b::10.0.0.1", "private (embedded in nat64)"),
        ("64:ff9b:1::1", "private"),
        ("4000::1", "reserved"),
    ],
)
def test_check_ip_blocks(ip: str, reason: str) -> None:
    assert check_ip(ipaddress.ip_address(ip), NONE) == reason


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2606:4700::1"]
)
def test_check_ip_admits_public(ip: str) -> None:
    assert check_ip(ipaddress.ip_address(ip), NONE) is None


def test_allowlist_cannot_admit_metadata_link_local_or_unspecified() -> None:
    """Cloud credential endpoints stay shut whatever the allowlist says (0.0.0.0/0 too)."""
    allow = Allowlist.parse("0.0.0.0/0, ::/0, 169.254.0.0/16, fd00::/8")
    assert check_ip(ipaddress.ip_address("10.1.2.3"), allow) is None
    assert check_ip(ipaddress.ip_address("fd12::1"), allow) is None
    for ip in [
        "169.254.169.254",  # IMDS (AWS, GCP, Azure, OCI)
        "169.254.170.2",  # ECS task credentials
        "169.254.170.23",  # EKS Pod Identity
        "169.254.1.1",  # any link-local
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # EKS Pod Identity over IPv6
        "168.63.129.16",  # Azure WireServer
        "192.0.0.192",  # Oracle Cloud metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "fe80::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
    ]:
        assert check_ip(ipaddress.ip_address(ip), allow) is not None, ip


def test_api_server_refused_whatever_the_allowlist_says() -> None:
    allow = Allowlist.parse("*.svc.cluster.local, *.svc, 10.0.0.0/8", api_server="10.96.0.1")
    assert check_ip(ipaddress.ip_address("10.96.0.1"), allow) == "cluster-internal"
    assert check_ip(ipaddress.ip_address("10.96.0.2"), allow) is None
    for url in (
        "http://kubernetes.default.svc.cluster.local/v1",
        "http://kubernetes.default.svc/v1",
        "https://kubernetes.default.svc.corp.example/v1",
        "https://KUBERNETES.default.svc.cluster.local./v1",
    ):
        with pytest.raises(GuardError, match="cluster-internal"):
            check_url(url, allow)
    check_url("http://ollama.models.svc.cluster.local/v1", allow)  # still admitted


@pytest.mark.parametrize(
    "url", ["https://localhost../v1", "https://api..openai.com/v1", "https://.openai.com/v1"]
)
def test_empty_labels_refused_before_resolution(url: str) -> None:
    """Hosts with an empty label never reach the resolver (which raises on them)."""
    with pytest.raises(GuardError):
        check_url(url, NONE)


# --- allowlist ------------------------------------------------------------------------


def test_allowlist_parse() -> None:
    allow = Allowlist.parse(
        " Ollama.Models.svc.cluster.local., *.vllm.svc , 10.96.0.0/12,127.0.0.1 fd00:1::/64"
    )
    assert allow.hosts == frozenset({"ollama.models.svc.cluster.local"})
    assert allow.admits_host("OLLAMA.models.svc.cluster.local.")
    assert allow.admits_host("a.vllm.svc")
    assert allow.admits_host("a.b.vllm.svc")
    assert not allow.admits_host("vllm.svc")  # the wildcard needs a label
    assert not allow.admits_host("evilvllm.svc")  # label boundary
    assert not allow.admits_host("ollama.models.svc.cluster.local.evil.com")
    assert allow.admits_ip(ipaddress.ip_address("10.100.1.1"))
    assert not allow.admits_ip(ipaddress.ip_address("10.112.0.0"))
    assert allow.admits("127.0.0.1")
    assert allow.admits("2130706433")  # same address, other spelling
    assert not allow.admits("127.0.0.2")
    assert allow.admits_ip(ipaddress.ip_address("fd00:1::5"))
    assert str(Allowlist.parse("")) == ""
    assert Allowlist.parse(None) == Allowlist()


@pytest.mark.parametrize(
    "entry", ["http://x", "a b/c", "10.0.0.0/33", "-bad-", "x..y", "1.2.3.4.5"]
)
def test_allowlist_rejects_garbage(entry: str) -> None:
    with pytest.raises(ValueError, match="allowlist entry"):
        Allowlist.parse(entry)


def test_allowlisted_host_may_use_http_and_private_address() -> None:
    allow = Allowlist.parse("ollama.models.svc.cluster.local,127.0.0.1")
    check_url("http://ollama.models.svc.cluster.local:11434/v1", allow)
    check_url("http://127.0.0.1:8000/v1", allow)
    with pytest.raises(GuardError, match="plain http"):
        check_url("http://api.openai.com/v1", allow)
    with pytest.raises(GuardError, match="loopback"):
        check_url("http://127.0.0.2:8000/v1", allow)


# --- resolve_and_check ----------------------------------------------------------------


async def test_resolve_refuses_if_any_answer_blocked() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.1"]

    with pytest.raises(GuardError, match=r"10\.0\.0\.1 \(private\)"):
        await resolve_and_check("dual.example", 443, NONE, resolver)


async def test_resolve_returns_approved_and_skips_dns_for_literals() -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["8.8.8.8", "2606:4700::1"]

    assert await resolve_and_check("ok.example", 443, NONE, resolver) == ["8.8.8.8", "2606:4700::1"]
    assert await resolve_and_check("0x08080808", 443, NONE, resolver) == ["8.8.8.8"]
    assert calls == ["ok.example"]


async def test_resolve_refuses_garbage_answer() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["not-an-ip"]

    with pytest.raises(GuardError, match="non-address"):
        await resolve_and_check("x.example", 443, NONE, resolver)


async def test_allowlisted_host_resolving_private_is_admitted() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.96.3.4"]

    allow = Allowlist.parse("ollama.models.svc.cluster.local")
    assert await resolve_and_check("ollama.models.svc.cluster.local", 80, allow, resolver) == [
        "10.96.3.4"
    ]
    with pytest.raises(GuardError, match="private"):
        await resolve_and_check("other.models.svc.cluster.local", 80, allow, resolver)


# --- error messages never carry secrets -----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://sk-or-v1-SECRET@127.0.0.1/v1?key=sk-or-v1-SECRET",
        "https://user:sk-or-v1-SECRET@api.openai.com/v1",
        "http://api.openai.com/v1?api_key=sk-or-v1-SECRET",
        "https://169.254.169.254/sk-or-v1-SECRET",
        "https://0177.0.0.1/sk-or-v1-SECRET",
        "file:///sk-or-v1-SECRET",
        "https://api.openai.com /sk-or-v1-SECRET",
    ],
)
def test_guard_error_never_names_secret(url: str) -> None:
    with pytest.raises(GuardError) as info:
        check_url(url, NONE)
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in repr(info.value.args)


# --- property: any numeric spelling of a blocked address is blocked -------------------

BLOCKED_V4 = [
    ipaddress.ip_network(n)
    for n in [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "0.0.0.0/8",
    ]
]


def _spell(value: int, parts: int, bases: list[int]) -> str:
    """Write a 32-bit address in inet_aton form: ``parts`` numbers, each in a base."""
    octets = value.to_bytes(4, "big")
    numbers = [*octets[: parts - 1], int.from_bytes(octets[parts - 1 :], "big")]
    out = []
    for n, base in zip(numbers, bases, strict=False):
        out.append(hex(n) if base == 16 else ("0" + oct(n)[2:]) if base == 8 else str(n))
    return ".".join(out)


@settings(max_examples=300, deadline=None)
@given(
    net=st.sampled_from(BLOCKED_V4),
    offset=st.integers(min_value=0, max_value=2**24 - 1),
    parts=st.integers(min_value=1, max_value=4),
    bases=st.lists(st.sampled_from([8, 10, 16]), min_size=4, max_size=4),
    dot=st.booleans(),
)
def test_numeric_spellings_of_blocked_addresses(
    net: ipaddress.IPv4Network, offset: int, parts: int, bases: list[int], dot: bool
) -> None:
    ip = net[offset % net.num_addresses]
    host = _spell(int(ip), parts, bases) + ("." if dot else "")
    assert parse_host_literal(host) == ip
    assert check_ip(ip, NONE) is not None
    with pytest.raises(GuardError):
        check_url(f"https://{host}/v1", NONE)


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from(["fc00::/7", "fe80::/10", "::ffff:0:0/96", "::1/128", "ff00::/8"]),
    bits=st.integers(min_value=0, max_value=2**128 - 1),
)
def test_ipv6_blocked_ranges(prefix: str, bits: int) -> None:
    net = ipaddress.IPv6Network(prefix)
    ip = net[bits % net.num_addresses]
    with pytest.raises(GuardError):
        check_url(f"https://[{ip}]/v1", NONE)


async def test_check_upstream_static_then_dns() -> None:
    from byollm_router.guard import check_upstream

    async def resolver(host: str, port: int) -> list[str]:
        assert port == 443
        return {"inside.example": ["10.1.2.3"], "outside.example": ["8.8.4.4"]}[host]

    assert await check_upstream("https://outside.example/v1", NONE, resolver) == ["8.8.4.4"]
    with pytest.raises(GuardError, match="private"):
        await check_upstream("https://inside.example/v1", NONE, resolver)
    with pytest.raises(GuardError, match="metadata"):
        await check_upstream("https://169.254.169.254/v1", NONE, resolver)


URL_CHARS = st.sampled_from(
    [*list("abcxn-.:@[]%/\\?#0123456789fF "), "\t", "\x00", "\u3002", "\uff0e", "\u2460", "::"]
)


@settings(max_examples=500, deadline=None)
@given(
    scheme=st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "", "//"]),
    rest=st.lists(URL_CHARS, max_size=30).map("".join) | st.text(max_size=40),
)
def test_check_url_only_ever_raises_guard_error(scheme: str, rest: str) -> None:
    """Found by review: urlsplit's ValueError and IDNA decoding errors escaped check_url.
    Whatever the input, the verdict is a GuardError or admission, never a crash."""
    with contextlib.suppress(GuardError):
        check_url(scheme + rest, NONE)


@settings(max_examples=300, deadline=None)
@given(host=st.lists(URL_CHARS, max_size=30).map("".join) | st.text(max_size=40))
def test_parse_and_allowlist_never_crash(host: str) -> None:
    parse_host_literal(host)
    NONE.admits(host)
    with contextlib.suppress(ValueError):
        Allowlist.parse(host)
