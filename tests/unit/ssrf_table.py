"""The SSRF attempts the guard is tested against, and the markdown table they produce.

Every attempt is evaluated exactly as the router and operator do it: ``check_url`` on the
URL (static, what admission and start-up see), then ``resolve_and_check`` on its host
(what the connect-time transport sees). DNS answers come from ``FAKE_DNS``, an in-memory
resolver: nothing here sends a packet anywhere.

    python -m tests.unit.ssrf_table               # print the table
    python -m tests.unit.ssrf_table --write       # write docs/ssrf.md
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from byollm_router.guard import (
    Allowlist,
    GuardError,
    check_url,
    resolve_and_check,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ssrf.md"

# Hostnames the attempts use, and what a hostile (or honest) DNS server answers.
FAKE_DNS: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "internal.attacker.example": ["10.0.0.5"],
    "kube-svc.attacker.example": ["10.96.0.1"],
    "cgnat.attacker.example": ["100.64.1.1"],
    "meta.attacker.example": ["169.254.169.254"],
    "meta6.attacker.example": ["fd00:ec2::254"],
    "ula.attacker.example": ["fd12:3456::1"],
    "ll6.attacker.example": ["fe80::1%1"],
    "mapped.attacker.example": ["::ffff:127.0.0.1"],
    "nat64meta.attacker.example": ["64:ff9b::a9fe:a9fe"],
    "zero.attacker.example": ["0.0.0.0"],
    "mixed.attacker.example": ["93.184.215.14", "127.0.0.1"],
    "mixed6.attacker.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::1"],
    "empty.attacker.example": [],
    "ollama.models.svc.cluster.local": ["10.96.3.4"],
    "vllm.models.svc.cluster.local": ["10.96.7.8"],
    "evil.models.svc.cluster.local": ["169.254.169.254"],
    "api.openai.com": ["162.159.140.245", "2606:4700::6812:7b2"],
    "openrouter.ai": ["104.18.2.115"],
    "dns64.example": ["64:ff9b::808:808"],
}


async def fake_resolver(host: str, port: int) -> list[str]:
    """Answer from FAKE_DNS; an unknown name is a test bug, never a real lookup."""
    try:
        return list(FAKE_DNS[host.rstrip(".").lower()])
    except KeyError:
        raise AssertionError(f"attempt uses unknown hostname {host!r}") from None


@dataclass(frozen=True)
class Attempt:
    url: str
    form: str
    allowlist: str = ""


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    stage: str  # "static" | "resolve" | "-"
    reason: str


ATTEMPTS: list[Attempt] = [
    # loopback, in many spellings
    Attempt("https://127.0.0.1/v1", "loopback"),
    Attempt("https://127.0.0.2/v1", "loopback, not .1"),
    Attempt("https://127.255.255.254/v1", "loopback, end of 127/8"),
    Attempt("https://localhost/v1", "localhost name"),
    Attempt("https://LocalHost./v1", "localhost, mixed case + trailing dot"),
    Attempt("https://api.localhost/v1", "*.localhost (RFC 6761)"),
    Attempt("https://127.0.0.1./v1", "loopback + trailing dot"),
    Attempt("https://2130706433/v1", "decimal integer 127.0.0.1"),
    Attempt("https://0x7f000001/v1", "hex integer"),
    Attempt("https://0x7f.1/v1", "hex short form"),
    Attempt("https://0x7f.0x0.0x0.0x1/v1", "hex per octet"),
    Attempt("https://0177.0.0.1/v1", "octal first octet"),
    Attempt("https://017700000001/v1", "octal integer"),
    Attempt("https://127.1/v1", "short form a.d"),
    Attempt("https://127.0.1/v1", "short form a.b.d"),
    Attempt("https://%31%32%37.0.0.1/v1", "percent-encoded digits"),
    Attempt("https://127\u30020\u30020\u30021/v1", "ideographic full stops"),
    Attempt("https://[::1]/v1", "IPv6 loopback"),
    Attempt("https://[0:0:0:0:0:0:0:1]/v1", "IPv6 loopback, long form"),
    Attempt("https://[::ffff:127.0.0.1]/v1", "IPv4-mapped IPv6 loopback"),
    Attempt("https://[::ffff:7f00:1]/v1", "IPv4-mapped IPv6, hex"),
    Attempt("https://[::127.0.0.1]/v1", "IPv4-compatible IPv6"),
    Attempt("https://[2002:7f00:1::]/v1", "6to4 embedding 127.0.0.1"),
    Attempt("https://127.0.0.1.nip.io/v1", "wildcard DNS to loopback"),
    Attempt("https://localhost.localdomain/v1", "/etc/hosts loopback alias"),
    Attempt("https://ip6-localhost/v1", "/etc/hosts IPv6 loopback alias"),
    Attempt("https://%6c%6f%63%61%6c%68%6f%73%74/v1", "percent-encoded 'localhost'"),
    Attempt(
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/v1",
        "full-width 'localhost'",
    ),
    Attempt("https://[0000::1]/v1", "IPv6 loopback, zero-padded"),
    Attempt("https://[::1%25lo]/v1", "IPv6 loopback with zone id"),
    Attempt("https://[64:ff9b::127.0.0.1]/v1", "NAT64 prefix embedding loopback"),
    Attempt("https://[::ffff:0177.0.0.1]/v1", "IPv4-mapped with octal octet"),
    Attempt("https://0177.0000.0000.0001/v1", "octal, zero-padded octets"),
    Attempt("https://127.0.0.1%09/v1", "percent-encoded tab after address"),
    # unspecified
    Attempt("https://0.0.0.0/v1", "unspecified (Linux: localhost)"),
    Attempt("https://0/v1", "unspecified, one number"),
    Attempt("https://[::]/v1", "IPv6 unspecified"),
    Attempt("https://[::ffff:0.0.0.0]/v1", "IPv4-mapped unspecified"),
    Attempt("https://zero.attacker.example/v1", "DNS answer 0.0.0.0"),
    # RFC 1918 private
    Attempt("https://10.0.0.1/v1", "RFC 1918 10/8"),
    Attempt("https://10.255.255.254/v1", "RFC 1918 10/8, top"),
    Attempt("https://10.1/v1", "RFC 1918 short form"),
    Attempt("https://167772161/v1", "RFC 1918 decimal (10.0.0.1)"),
    Attempt("https://172.16.0.1/v1", "RFC 1918 172.16/12"),
    Attempt("https://172.31.255.254/v1", "RFC 1918 172.16/12, top"),
    Attempt("https://192.168.0.1/v1", "RFC 1918 192.168/16"),
    Attempt("https://192.168.1.1:8443/v1", "RFC 1918 with port"),
    Attempt("https://0xc0a80001/v1", "RFC 1918 hex (192.168.0.1)"),
    Attempt("https://[::ffff:10.0.0.1]/v1", "IPv4-mapped private"),
    Attempt("https://[2002:0a00:0001::]/v1", "6to4 embedding 10.0.0.1"),
    Attempt("https://internal.attacker.example/v1", "DNS answer in 10/8"),
    Attempt("https://kube-svc.attacker.example/v1", "DNS answer = a ClusterIP"),
    Attempt("https://kubernetes.default.svc/api", "Kubernetes API service name"),
    # CGNAT
    Attempt("https://100.64.0.1/v1", "CGNAT 100.64/10"),
    Attempt("https://100.127.255.254/v1", "CGNAT, top"),
    Attempt("https://cgnat.attacker.example/v1", "DNS answer in CGNAT"),
    # link-local and cloud metadata
    Attempt("https://169.254.169.254/latest/meta-data/", "AWS/GCP/Azure metadata IP"),
    Attempt("https://169.254.170.2/v2/credentials", "AWS ECS credentials"),
    Attempt("https://100.100.100.200/latest/meta-data", "Alibaba metadata"),
    Attempt("https://192.0.0.192/", "Oracle classic metadata"),
    Attempt("https://2852039166/latest", "metadata as decimal"),
    Attempt("https://0xa9fea9fe/latest", "metadata as hex"),
    Attempt("https://0xa9.0xfe.0xa9.0xfe/latest", "metadata, hex octets"),
    Attempt("https://0251.0376.0251.0376/latest", "metadata, octal octets"),
    Attempt("https://169.254.43518/latest", "metadata, short form"),
    Attempt("https://[::ffff:169.254.169.254]/latest", "metadata, IPv4-mapped"),
    Attempt("https://[::ffff:a9fe:a9fe]/latest", "metadata, IPv4-mapped hex"),
    Attempt("https://[64:ff9b::169.254.169.254]/latest", "metadata via NAT64 prefix"),
    Attempt("https://[2002:a9fe:a9fe::]/latest", "metadata via 6to4"),
    Attempt("https://metadata.google.internal%2e/", "GCP name, percent-encoded dot"),
    Attempt("https://[fe80::a9fe:a9fe]/latest", "link-local IPv6 ending in a9fe:a9fe"),
    Attempt("https://[fd00:ec2::254]/latest", "AWS IMDS IPv6"),
    Attempt("https://metadata.google.internal/computeMetadata/v1/", "GCP metadata name"),
    Attempt("https://METADATA.Google.Internal./computeMetadata/v1/", "GCP name, case + dot"),
    Attempt("https://metadata/computeMetadata/v1/", "bare 'metadata'"),
    Attempt("https://instance-data/latest", "AWS 'instance-data'"),
    Attempt("https://meta.attacker.example/latest", "DNS answer 169.254.169.254"),
    Attempt("https://meta6.attacker.example/latest", "DNS answer fd00:ec2::254"),
    Attempt("https://nat64meta.attacker.example/", "DNS answer NAT64(metadata)"),
    Attempt(
        "https://evil.models.svc.cluster.local/",
        "allowlisted name answering metadata",
        "*.models.svc.cluster.local",
    ),
    Attempt("https://169.254.169.254/", "metadata inside allowlisted CIDR", "169.254.0.0/16"),
    Attempt("https://169.254.1.1/", "IPv4 link-local"),
    Attempt("https://[fe80::1]/v1", "IPv6 link-local"),
    Attempt("https://[fe80::1%25eth0]/v1", "IPv6 link-local with zone id"),
    Attempt("https://ll6.attacker.example/v1", "DNS answer fe80::/10"),
    # unique-local, multicast, reserved
    Attempt("https://[fc00::1]/v1", "unique-local fc00::/7"),
    Attempt("https://[fd12:3456::1]/v1", "unique-local fd00::/8"),
    Attempt("https://ula.attacker.example/v1", "DNS answer unique-local"),
    Attempt("https://[fec0::1]/v1", "IPv6 site-local (deprecated)"),
    Attempt("https://[ff02::1]/v1", "IPv6 multicast"),
    Attempt("https://224.0.0.1/v1", "IPv4 multicast"),
    Attempt("https://255.255.255.255/v1", "broadcast"),
    Attempt("https://240.0.0.1/v1", "reserved 240/4"),
    Attempt("https://198.18.0.1/v1", "benchmarking 198.18/15"),
    Attempt("https://[2001::1]/v1", "Teredo"),
    Attempt("https://[2001:db8::1]/v1", "IPv6 documentation"),
    Attempt("https://mapped.attacker.example/v1", "DNS answer IPv4-mapped loopback"),
    # DNS tricks
    Attempt("https://mixed.attacker.example/v1", "one public + one loopback answer"),
    Attempt("https://mixed6.attacker.example/v1", "public v6 + ::1 answer"),
    Attempt("https://empty.attacker.example/v1", "no DNS answer"),
    # URL tricks
    Attempt("https://evil@127.0.0.1/v1", "userinfo"),
    Attempt("https://api.openai.com@127.0.0.1/v1", "userinfo that looks like a host"),
    Attempt("https://user:pass@api.openai.com/v1", "credentials in URL"),
    Attempt("https://127.0.0.1\\@api.openai.com/v1", "backslash parser confusion"),
    Attempt("https://api.openai.com\r\n.127.0.0.1/v1", "CR/LF in host"),
    Attempt("https://api.openai.com /v1", "space in URL"),
    Attempt("http://api.openai.com/v1", "plain http"),
    Attempt("http://127.0.0.1:8000/v1", "plain http to loopback"),
    Attempt("file:///etc/passwd", "file scheme"),
    Attempt("gopher://127.0.0.1:6379/_INFO", "gopher to redis"),
    Attempt("ftp://api.openai.com/", "ftp scheme"),
    Attempt("https:///v1", "no host"),
    Attempt("https://08.0.0.1/v1", "invalid octal (resolver-dependent)"),
    Attempt("https://1.2.3.4.5/v1", "five numeric labels"),
    Attempt("https://\uff11\uff12\uff17.0.0.1/v1", "full-width digits"),
    Attempt("https://localhost../v1", "localhost, two trailing dots"),
    Attempt("https://api..openai.com/v1", "empty label"),
    Attempt("https://168.63.129.16/v1", "Azure WireServer"),
    Attempt("https://169.254.170.23/v1", "EKS Pod Identity, allowlist 0.0.0.0/0", "0.0.0.0/0"),
    Attempt("https://[fd00:ec2::23]/v1", "EKS Pod Identity over IPv6, allowlist ::/0", "::/0"),
    Attempt("https://192.0.0.192/v1", "Oracle Cloud metadata, allowlist 0.0.0.0/0", "0.0.0.0/0"),
    Attempt(
        "http://kubernetes.default.svc.cluster.local/v1",
        "API server, allowlist *.svc.cluster.local",
        "*.svc.cluster.local",
    ),
    Attempt("https://kubernetes.default.svc.corp.example/v1", "API server, custom cluster domain"),
]

# Must be ADMITTED: proves the guard blocks hostile forms, not everything.
CONTROLS: list[Attempt] = [
    Attempt("https://api.openai.com/v1", "public provider"),
    Attempt("https://openrouter.ai/api/v1", "public provider"),
    Attempt("https://8.8.8.8/v1", "public IPv4 literal"),
    Attempt("https://[2606:4700:4700::1111]/v1", "public IPv6 literal"),
    Attempt("https://[64:ff9b::8.8.8.8]/v1", "NAT64 of a public IPv4"),
    Attempt("https://dns64.example/v1", "DNS64 answer for a public IPv4"),
    Attempt("http://127.0.0.1:8000/v1", "allowlisted loopback stub", "127.0.0.1"),
    Attempt(
        "http://ollama.models.svc.cluster.local:11434/v1",
        "allowlisted in-cluster host",
        "ollama.models.svc.cluster.local",
    ),
    Attempt(
        "http://vllm.models.svc.cluster.local:8000/v1",
        "allowlisted wildcard",
        "*.models.svc.cluster.local",
    ),
    Attempt("https://10.96.0.10/v1", "allowlisted CIDR", "10.96.0.0/12"),
    Attempt("http://localhost:8000/v1", "allowlisted localhost", "localhost"),
]


def evaluate(attempt: Attempt) -> Verdict:
    """Run the attempt through both stages of the guard."""
    allow = Allowlist.parse(attempt.allowlist)
    try:
        check_url(attempt.url, allow)
    except GuardError as exc:
        return Verdict(True, "static", exc.reason)
    import httpx  # local: the URL already parsed in check_url

    url = httpx.URL(attempt.url)
    try:
        asyncio.run(resolve_and_check(url.host, url.port or 443, allow, fake_resolver))
    except GuardError as exc:
        return Verdict(True, "resolve", exc.reason)
    return Verdict(False, "-", "admitted")


def _cell(text: str) -> str:
    shown = text.encode("unicode_escape").decode("ascii")
    return "`" + shown.replace("|", "\\|").replace("`", "'") + "`"


def crd_refuses(url: str) -> bool:
    """Whether the CRD's CEL rules (their Python mirror) refuse ``url`` at ``kubectl apply``."""
    from byollm.api import base_url_problem

    try:
        return base_url_problem(url) is not None
    except Exception:  # a mirror that crashes is reported as not refusing
        return False


def render() -> str:
    """The markdown table (deterministic: same input, same bytes)."""
    rows = [(a, evaluate(a), crd_refuses(a.url)) for a in ATTEMPTS]
    blocked = sum(v.blocked for _, v, _ in rows)
    at_apply = sum(crd for _, _, crd in rows)
    lines = [
        f"**{blocked} of {len(rows)} SSRF attempts blocked** "
        f"({100 * blocked // len(rows)}%) by the guard; {at_apply} of them already at "
        "`kubectl apply` by the CRD's CEL rules. Generated by "
        "`python -m tests.unit.ssrf_table`; `tests/unit/test_guard.py` fails if this table "
        "is stale. *CRD* = refused by the CEL rules on `spec.provider.baseURL` (no DNS); "
        "*static* = refused by the guard's `check_url` (operator, router start-up, every "
        "request); *resolve* = refused at connect time after DNS, before any socket opens "
        "(answers here come from a fake resolver: no packet is sent).",
        "",
        "| # | attempt | form | allowlist | CRD | guard | stage | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (a, v, crd) in enumerate(rows, 1):
        allow = _cell(a.allowlist) if a.allowlist else ""
        mark = "blocked" if v.blocked else "**NOT BLOCKED**"
        at = "refused" if crd else "-"
        lines.append(
            f"| {i} | {_cell(a.url)} | {a.form} | {allow} | {at} | {mark} | {v.stage} "
            f"| {v.reason} |"
        )
    lines += ["", "Controls (must be admitted by the guard):", ""]
    lines += ["| url | form | allowlist | CRD | guard |", "|---|---|---|---|---|"]
    for a in CONTROLS:
        v = evaluate(a)
        allow = _cell(a.allowlist) if a.allowlist else ""
        crd = "refused" if crd_refuses(a.url) else "admitted"
        guard = "refused" if v.blocked else "admitted"
        lines.append(f"| {_cell(a.url)} | {a.form} | {allow} | {crd} | {guard} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="write docs/ssrf.md")
    args = parser.parse_args(argv)
    table = render()
    if args.write:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text("# SSRF attempts against the guard\n\n" + table)
    if not args.write:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
