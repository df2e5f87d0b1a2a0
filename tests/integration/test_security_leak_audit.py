"""Leak audit: a canary key and a canary prompt through a whole LLMConfig lifecycle, then a
search of everything the platform keeps.

The lifecycle, on the real control plane with the operator running as its least-privilege
identity: create BYO before its Secret exists (SecretNotFound), add the Secret (Ready,
CredentialsValid=True against a 127.0.0.1 stub), run a router process with exactly the
environment the operator wrote and send the canary prompt through it with the ``openai``
SDK (plain, streamed, and an upstream error), change provider and model, rotate the key
in the source Secret to one the provider refuses (CredentialsValid=False), switch to a
sealed key copied from another tenant (UnsealFailed), then to a sealed key for this
tenant, revert to Managed (BYO keys wiped), delete.

Then searched, for every text form of the keys (raw, base64 at every alignment, the part
after the 8-character prefix) and the prompt: every log file of the run (operator,
router, etcd, kube-apiserver, controller-manager, scheduler, kwok, the API audit log),
every Event, every LLMConfig (snapshotted after each step, so deleted objects count too),
every Deployment, ReplicaSet, Pod, Service, NetworkPolicy and ConfigMap (also snapshotted),
and the raw etcd value of every non-Secret key (twice: while the router config is live,
and at the end). Secrets in etcd must be ``k8s:enc:aesgcm:`` ciphertext without the
canary bytes. The only place a key may show is its first 8 characters in
``status.apiKeyPrefix``. The stub provider itself is the tenant's provider: it is meant
to see the prompt (and does, which proves the search looks at a prompt that travelled).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from operator_helpers import (
    child_paths,
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    patch_spec,
    secret_data,
    wait_for,
    wait_ready,
)
from security_helpers import Corpus, Router, StubProvider, env_from_deployment, needles

from byollm import sealing
from byollm.kube import Kube, path
from byollm_router import contract

pytestmark = pytest.mark.cluster

OPERATOR_NS = "byollm-system"
# Non-Secret objects searched through the API (cluster-wide), snapshotted after each step.
API_LISTS = {
    "event": "/api/v1/events",
    "event.k8s.io": "/apis/events.k8s.io/v1/events",
    "llmconfig": "/apis/byollm.io/v1alpha1/llmconfigs",
    "deployment": "/apis/apps/v1/deployments",
    "replicaset": "/apis/apps/v1/replicasets",
    "pod": "/api/v1/pods",
    "service": "/api/v1/services",
    "networkpolicy": "/apis/networking.k8s.io/v1/networkpolicies",
    "configmap": "/api/v1/configmaps",
}


class Audit:
    """Collects every place to search; objects are deduplicated by uid + resourceVersion."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.corpus = Corpus()
        self.seen: set[tuple[str, str, str]] = set()
        self.etcd_keys = 0
        self.etcd_secrets = 0
        self.secret_keys: set[str] = set()

    def snapshot(self) -> None:
        for kind, p in API_LISTS.items():
            for item in self.kube.list(p):
                meta = item["metadata"]
                ident = (kind, meta.get("uid", ""), meta.get("resourceVersion", ""))
                if ident in self.seen:
                    continue
                self.seen.add(ident)
                label = f"{kind} {meta.get('namespace', '')}/{meta['name']}"
                self.corpus.add(kind, label, json.dumps(item))

    def etcd(self, control_plane: Any) -> None:
        for key in control_plane.etcd_keys("/registry/"):
            try:
                value = control_plane.etcd_get(key)
            except KeyError:  # deleted between listing and reading
                continue
            self.etcd_keys += 1
            if key.startswith("/registry/secrets/"):
                self.etcd_secrets += 1
                self.secret_keys.add(key)
                assert value.startswith(b"k8s:enc:aesgcm:"), f"{key} is not encrypted in etcd"
                self.corpus.add("etcd-secret", key, value)
            else:
                self.corpus.add("etcd", key, value)

    def logs(self, log_dir: Path) -> None:
        for f in sorted(log_dir.rglob("*")):
            if f.is_file():
                self.corpus.add(f"log:{_log_kind(f.name)}", str(f.name), f.read_bytes())


def _log_kind(name: str) -> str:
    for kind in ("operator", "router", "audit"):
        if name.startswith(kind):
            return kind
    return name.removesuffix(".log")


def _wait_condition(
    kube: Kube, ns: str, name: str, type_: str, status: str, reason: str, timeout: float = 45
) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        obj = kube.get(llmc_path(ns, name))
        c = condition(obj, type_)
        gen = (obj or {}).get("metadata", {}).get("generation")
        if (c.get("status"), c.get("reason"), c.get("observedGeneration")) == (status, reason, gen):
            return obj
        return None

    result: dict[str, Any] = wait_for(f"{ns}/{name} {type_}={status} ({reason})", ok, timeout)
    return result


def test_canary_key_and_prompt_appear_nowhere(
    control_plane: Any, kube: Kube, running_operator: Any, namespace: str, tmp_path: Path
) -> None:
    ns, name = namespace, "audit"
    key_a = f"sk-canary-{secrets.token_hex(16)}"  # valid at the stub
    key_b = f"sk-canary-{secrets.token_hex(16)}"  # rotated in, refused by the provider
    key_s = f"sk-sealed-{secrets.token_hex(16)}"  # sealed for this tenant
    key_x = f"sk-xtenant-{secrets.token_hex(16)}"  # sealed for another tenant
    prompt = f"canary-prompt-{secrets.token_hex(16)}"
    forms = {
        "key A": needles(key_a),
        "key B (rotated)": needles(key_b),
        "key S (sealed plaintext)": needles(key_s),
        "key X (cross-tenant sealed plaintext)": needles(key_x),
        "prompt": [prompt.encode(), prompt[7:].encode()],
    }
    audit = Audit(kube)
    stub = StubProvider(key_a, tmp_path / "stub-provider.log")  # the tenant's provider
    t0 = time.monotonic()
    try:
        base_url = f"http://stub.{ns}.svc:{stub.port}/v1"  # *.svc -> 127.0.0.1 in tests
        spec = {
            "mode": "BYO",
            "provider": {
                "type": "openai",  # its /models needs the key: a 2xx proves it
                "baseURL": base_url,
                "defaultModel": "stub-model",
                "apiKey": {"secretKeyRef": {"name": "tenant-key", "key": "apiKey"}},
            },
            "routing": {"auto": False, "models": {"fast": "stub-model"}},
            "access": {"podSelector": {"matchLabels": {"app": "agent"}}},
        }

        # 1. error path: the Secret does not exist yet
        create_llmc(kube, ns, name, spec)
        _wait_condition(kube, ns, name, "SecretSynced", "False", "SecretNotFound")
        audit.snapshot()

        # 2. the Secret appears: Ready, CredentialsValid=True, prefix only
        key_secret(kube, ns, "tenant-key", key_a)
        obj = wait_ready(kube, ns, name)
        assert condition(obj, "CredentialsValid")["status"] == "True", obj["status"]
        assert obj["status"]["apiKeyPrefix"] == key_a[:8]
        audit.snapshot()

        # 3. a router with exactly the operator's environment; the canary prompt through it
        dep = kube.get(child_paths(ns, name)["deployment"])
        assert dep is not None
        env = env_from_deployment(kube, dep)
        assert env[contract.LLM_API_KEY] == key_a
        assert env[contract.LLM_BASE_URL] == base_url
        # Positive control: the search finds the key where it is meant to be (base64 in
        # the Secret's data as the API returns it), so an empty result below means absent.
        llm_secret_json = json.dumps(kube.get(child_paths(ns, name)["llm-secret"]))
        control = Corpus()
        control.add("control", "llm secret", llm_secret_json)
        assert control.hits({"key A": forms["key A"]}), "the search would miss the key"
        assert key_a not in llm_secret_json  # only base64 there, found by the b64 needles
        router = Router(env, Path(control_plane.log_dir) / f"router-audit-{ns}.log")
        try:
            client = openai.OpenAI(
                base_url=router.base_url, api_key=env[contract.BYOLLM_ROUTER_TOKEN], max_retries=0
            )
            with client:
                msgs: Any = [{"role": "user", "content": prompt}]
                reply = client.chat.completions.create(model="stub-model", messages=msgs)
                assert prompt in (reply.choices[0].message.content or "")
                streamed = "".join(
                    (chunk.choices[0].delta.content or "") if chunk.choices else ""
                    for chunk in client.chat.completions.create(
                        model="stub-model", messages=msgs, stream=True
                    )
                )
                assert prompt in streamed
                with pytest.raises(openai.APIStatusError) as err:  # upstream error path
                    client.chat.completions.create(model="stub-error-500", messages=msgs)
                assert err.value.status_code == 500
                bad = openai.OpenAI(base_url=router.base_url, api_key=key_a, max_retries=0)
                with bad, pytest.raises(openai.AuthenticationError):  # key as a wrong token
                    bad.chat.completions.create(model="stub-model", messages=msgs)
        finally:
            router.stop()
        seen_by_provider = json.dumps(stub.requests())
        assert prompt in seen_by_provider, "the prompt never reached the provider"
        audit.etcd(control_plane)  # while the BYO config (key A) is live in <name>-llm
        audit.snapshot()

        # 4. change provider type and model: a rollout, still Ready
        patch_spec(kube, ns, name, {"provider": {"type": "openai", "defaultModel": "stub-2"}})
        obj = wait_ready(kube, ns, name)
        assert (obj["status"]["provider"], obj["status"]["model"]) == ("openai", "stub-2")
        audit.snapshot()

        # 5. rotate the key in the source Secret to one the provider refuses (bad key)
        key_secret(kube, ns, "tenant-key", key_b)
        obj = wait_for(
            "CredentialsValid=False after rotation",
            lambda: (
                (o := kube.get(llmc_path(ns, name)))
                and condition(o, "CredentialsValid").get("reason") == "InvalidCredentials"
                and o
            ),
            timeout=45,
        )
        assert obj["status"]["apiKeyPrefix"] == key_b[:8]
        assert condition(obj, "Ready")["status"] == "False"
        audit.snapshot()

        # 6. sealed keys: one copied from another tenant fails; this tenant's opens
        cm = kube.get(path("v1", "ConfigMap", OPERATOR_NS, "byollm-sealing-public-key"))
        assert cm is not None
        public = cm["data"]["publicKey"]
        sealed_x = sealing.seal(key_x, public, ns, "other-tenant")
        patch_spec(
            kube, ns, name, {"provider": {"apiKey": {"secretKeyRef": None, "sealed": sealed_x}}}
        )
        _wait_condition(kube, ns, name, "SecretSynced", "False", "UnsealFailed")
        audit.snapshot()
        sealed_s = sealing.seal(key_s, public, ns, name)
        patch_spec(kube, ns, name, {"provider": {"apiKey": {"sealed": sealed_s}}})
        obj = _wait_condition(kube, ns, name, "CredentialsValid", "False", "InvalidCredentials")
        assert obj["status"]["apiKeyPrefix"] == key_s[:8]
        assert secret_data(kube, ns, f"{name}-llm")[contract.LLM_API_KEY] == key_s
        audit.snapshot()

        # 7. revert to Managed: the four BYO keys are wiped
        patch_spec(kube, ns, name, {"mode": "Managed"})
        obj = wait_ready(kube, ns, name)
        assert not set(contract.BYO_SECRET_KEYS) & set(secret_data(kube, ns, f"{name}-llm"))
        assert obj["status"].get("apiKeyPrefix") is None
        audit.snapshot()

        # 8. delete: the children go with it
        kube.request("DELETE", llmc_path(ns, name))
        wait_for(
            "children garbage-collected",
            lambda: all(kube.get(p) is None for p in child_paths(ns, name).values()),
            timeout=60,
        )
        time.sleep(1)  # let the last Events and log lines land
        lifecycle = time.monotonic() - t0
    finally:
        stub.stop()

    audit.snapshot()
    audit.etcd(control_plane)
    audit.logs(Path(control_plane.log_dir))

    hits = audit.corpus.hits(forms)
    counts = audit.corpus.counts()
    print(f"\nleak audit: lifecycle {lifecycle:.1f}s; places searched:")
    for kind, n in sorted(counts.items()):
        extra = f" ({audit.corpus.lines[kind]} lines)" if kind.startswith("log") else ""
        print(f"  {kind:24} {n:6}{extra}")
    print(
        f"  total {sum(counts.values())} places; {sum(audit.corpus.lines.values())} log lines; "
        f"{audit.etcd_keys} etcd reads ({audit.etcd_secrets} Secrets, all k8s:enc:aesgcm:); "
        f"{len(forms)} canaries x {sum(len(v) for v in forms.values())} forms; hits: {len(hits)}"
    )
    assert not hits, "canary found:\n" + "\n".join(f"  {k} {lbl}: {n}" for k, lbl, n in hits)
    # The 8-character prefix itself: only as status.apiKeyPrefix (JSON in the API and etcd).
    prefixes = {key_a[:8], key_s[:8], key_x[:8]}
    allowed = re.compile(rb'"apiKeyPrefix": ?"(' + b"|".join(p.encode() for p in prefixes) + b')"')
    stray = [
        (kind, label)
        for kind, label, blob in audit.corpus.places
        if any(p.encode() in allowed.sub(b"", blob) for p in prefixes)
    ]
    assert not stray, f"a key prefix outside status.apiKeyPrefix: {stray}"
    # The searches looked at the right things: prefixes are where they should be.
    llmc_text = b"".join(b for k, _, b in audit.corpus.places if k == "llmconfig")
    for key in (key_a, key_b, key_s):
        assert f'"apiKeyPrefix": "{key[:8]}"'.encode() in llmc_text
    assert counts["log:operator"] >= 1
    assert counts["log:router"] >= 1
    assert counts["log:audit"] == 1
    for secret in ("tenant-key", f"{name}-llm", f"{name}-router-token"):
        assert f"/registry/secrets/{ns}/{secret}" in audit.secret_keys  # read raw, encrypted
