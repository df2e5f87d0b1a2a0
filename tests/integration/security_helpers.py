"""Helpers for the security integration tests (leak audit, RBAC, hostile specs, DNS).

* ``needles(secret)``: every text form a secret could leak in (raw, base64 at each
  alignment, the part after the 8-char prefix), so a search is not fooled by encoding.
* ``Corpus``: the places searched, counted per kind, with hits reported by place.
* ``StubProvider`` / ``start_router``: the OpenAI-compatible stub and a ``byollm-router``
  process on 127.0.0.1. The router runs with exactly the environment the operator wrote
  (read back from the API like a kubelet would); the only test addition is "cluster DNS":
  ``*.svc`` names resolve to 127.0.0.1 and every other name fails, so no DNS query and no
  packet ever leaves loopback.
"""

from __future__ import annotations

import base64
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stubs.harness import RouterProcess, StubServer

from byollm.kube import Kube, path

ROOT = Path(__file__).resolve().parents[2]


def needles(secret: str, prefix_len: int = 8) -> list[bytes]:
    """Byte strings whose presence anywhere means ``secret`` leaked (beyond its prefix)."""
    raw = secret.encode()
    out = {raw, raw[prefix_len:]}
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            b64 = enc(b"\0" * shift + raw)
            # drop the characters touched by the padding bytes and the trailing group
            start = ((shift * 8) + 5) // 6
            out.add(b64[start:-4])
    return sorted(out, key=len)


@dataclass
class Corpus:
    """Places searched: (kind, label, bytes). ``hits`` lists (kind, label, needle name)."""

    places: list[tuple[str, str, bytes]] = field(default_factory=list)
    lines: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, label: str, data: bytes | str) -> None:
        blob = data.encode() if isinstance(data, str) else data
        self.places.append((kind, label, blob))
        if kind.startswith("log"):
            self.lines[kind] += blob.count(b"\n") + (1 if blob and not blob.endswith(b"\n") else 0)

    def counts(self) -> Counter[str]:
        return Counter(kind for kind, _, _ in self.places)

    def hits(self, secrets_: dict[str, list[bytes]]) -> list[tuple[str, str, str]]:
        found = []
        for kind, label, blob in self.places:
            for name, forms in secrets_.items():
                if any(form in blob for form in forms):
                    found.append((kind, label, name))
        return found


def StubProvider(api_key: str, log_path: Path) -> StubServer:
    """The stub accepting exactly ``api_key`` and recording bodies (to search for canaries)."""
    return StubServer("--api-key", api_key, "--record-bodies", log_path=log_path)


def env_from_deployment(kube: Kube, deployment: dict[str, Any]) -> dict[str, str]:
    """The router container's environment, resolved from the API as the kubelet would."""
    ns = deployment["metadata"]["namespace"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}

    def secret(name: str) -> dict[str, str]:
        obj = kube.get(path("v1", "Secret", ns, name)) or {}
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}

    for src in container.get("envFrom") or []:
        assert set(src) == {"secretRef"}, f"unexpected envFrom source {src}"
        env.update(secret(src["secretRef"]["name"]))
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secret(ref["name"])[ref["key"]]
    return env


# The router, with "cluster DNS": *.svc -> 127.0.0.1, every other name refused (no query).
_ROUTER_WITH_CLUSTER_DNS = """
import sys
from byollm_router import guard

async def cluster_dns(host, port):
    h = host.lower().rstrip('.')
    if h.endswith('.svc') or h.endswith('.svc.cluster.local'):
        return ['127.0.0.1']
    raise OSError('tests resolve only *.svc names (no DNS query leaves this machine)')

guard.system_resolver = cluster_dns
from byollm_router.main import main
main(sys.argv[1:])
"""


def Router(env: dict[str, str], log_path: Path) -> RouterProcess:
    """A router with exactly ``env`` whose resolver answers ``*.svc`` with 127.0.0.1."""
    return RouterProcess(env, log_path, command=[sys.executable, "-c", _ROUTER_WITH_CLUSTER_DNS])
