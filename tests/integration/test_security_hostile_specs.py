"""Hostile LLMConfig specs against the real API server and the running operator.

Hypothesis generates specs that are mostly plausible with hostile parts: wrong types,
unknown fields, enormous strings, unicode/CRLF in model names, baseURLs aimed at private,
metadata or oddly-spelled numeric hosts, both/neither key source, out-of-range replicas,
junk quantities and label selectors. Each is POSTed (with and without strict field
validation). Properties:

* refused -> HTTP 400/422 with a message naming the field (``spec.``...);
* accepted -> the operator handles it: the status reaches the object's generation, a
  refusal by the operator leaves no router Deployment, the operator process stays alive
  and logs no traceback, and an unrelated LLMConfig still reconciles afterwards;
* the Python models (the SDK, the operator) agree with the API server: whatever the API
  server accepts, ``LLMConfigSpec`` accepts.

No packet leaves loopback: the test operator resolves every provider host to 127.0.0.1,
and CEL refuses literal non-public addresses before anything is stored.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from operator_helpers import (
    child_paths,
    condition,
    create_llmc,
    key_secret,
    llmc_path,
    llmconfig,
    patch_spec,
    wait_for,
    wait_ready,
)
from pydantic import ValidationError

from byollm.api import LLMConfigSpec
from byollm.kube import Kube, KubeError

MAX_EXAMPLES = 150
FIELD = re.compile(r"(?<![\w.])spec(\.[\w\[\]]+)*(?!\w)")  # spec, spec.x.y[0] (not "specified")
SEALED_OK = "v1.0123456789abcdef." + "QUJDREVGR0hJSktMTU5PUA" * 3 + "=="

# --- strategies ---------------------------------------------------------------------------

big = st.integers(min_value=300, max_value=70_000).map(lambda n: "m" * n)
weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "gpt-4o\r\nX-Injected: 1",
            "model\nname",
            "m\x00odel",
            "\uff27\uff30\uff34-\uff14\uff4f",
            "модель",
            "🤖",
            "a" * 257,
            "../../etc/passwd",
            "${jndi:ldap://x}",
            "'; DROP TABLE x; --",
            "\u202egpt",
        ]
    ),
    big,
)
junk = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    weird_text,
)

HOSTILE_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "100.100.100.200",
    "169.254.169.254",
    "[::1]",
    "[fd00:ec2::254]",
    "[::ffff:127.0.0.1]",
    "[::ffff:a9fe:a9fe]",
    "[fe80::1%25eth0]",
    "[2002:7f00:1::]",
    "0.0.0.0",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "metadata.google.internal",
    "metadata",
    "kubernetes.default.svc",
    "①②⑦.0.0.1",
    "xn--80ak6aa92e.com",
    "a" * 300 + ".com",
    "evil.com\r\nHost: x",
    "ex ample.com",
    "example.com.",
    "8.8.8.8",
    "[2606:4700::1111]",
]
PUBLIC_HOSTS = ["api.example.com", "llm.example.org", "models.example.net"]
SCHEMES = ["https", "https", "http", "ftp", "file", "gopher", "javascript", "HTTPS"]

base_url = st.one_of(
    st.builds(
        lambda scheme, host, port, tail: f"{scheme}://{host}{port}{tail}",
        st.sampled_from(SCHEMES),
        st.sampled_from(HOSTILE_HOSTS + PUBLIC_HOSTS),
        st.sampled_from(["", ":443", ":8080", ":0", ":99999", ":-1"]),
        st.sampled_from(["/v1", "", "/v1?x=1", "/v1#f", "/%0d%0a", "/v1/../../admin"]),
    ),
    st.builds(
        lambda u, h: f"https://{u}@{h}/v1", st.sampled_from(["user:pw", "x"]), st.just("a.b")
    ),
    weird_text,
)

k8s_name = st.one_of(
    st.just("k"),
    st.just("k"),
    st.sampled_from(["", "K", "a_b", "a..b", "-a", "a" * 254, "k\r\n", "ключ", "../k"]),
    weird_text,
)
api_key = st.one_of(
    st.fixed_dictionaries({"secretKeyRef": st.fixed_dictionaries({"name": k8s_name})}),
    st.fixed_dictionaries(
        {"secretKeyRef": st.fixed_dictionaries({"name": st.just("k"), "key": k8s_name})}
    ),
    st.fixed_dictionaries({"sealed": st.one_of(st.just(SEALED_OK), weird_text)}),
    st.just({"secretKeyRef": {"name": "k"}, "sealed": SEALED_OK}),  # both
    st.just({}),  # neither
    junk,
)
model = st.one_of(st.just("gpt-4o-mini"), st.just("qwen/qwen3-30b-a3b-instruct"), weird_text, junk)
provider_type = st.one_of(
    st.sampled_from(["openai", "openrouter", "groq", "anthropic", "ollama", "custom", "azure"]),
    st.sampled_from(["OpenAI", "bedrock", "", "openai "]),
    junk,
)


def _optional(d: dict[str, Any], keys: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(d, optional=keys)


quantity = st.one_of(
    st.sampled_from(["100m", "1", "128Mi", "1e3", "-1", "abc", "1.5.5", "1Zi", "0x10", "\u221e"]),
    st.integers(min_value=-10, max_value=10**20),
    junk,
)
label_key = st.one_of(
    st.sampled_from(["app", "app.kubernetes.io/name", "bad key", "a/b/c", "-x", "x" * 70]),
    st.text(max_size=10),
)
selector = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "matchLabels": st.dictionaries(
                label_key, st.one_of(st.just("agent"), st.text(max_size=70)), max_size=3
            ),
            "matchExpressions": st.lists(
                _optional(
                    {
                        "key": label_key,
                        "operator": st.sampled_from(["In", "NotIn", "Exists", "Bogus", ""]),
                    },
                    {"values": st.lists(st.text(max_size=8), max_size=3)},
                ),
                max_size=2,
            ),
        },
    ),
    junk,
)
resources = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "requests": st.fixed_dictionaries({}, optional={"cpu": quantity, "memory": quantity}),
            "limits": st.fixed_dictionaries({}, optional={"memory": quantity, "gpu": quantity}),
        },
    ),
    junk,
)
replicas = st.one_of(st.sampled_from([0, -1, 21, 2**31, 2**63 - 1]), junk)

# A plausible spec (what a tenant would write) ...
valid_spec = st.builds(
    lambda mode, ptype, url, mdl, key, auto, reps: {
        "mode": mode,
        "provider": {
            "type": ptype,
            # Azure models are deployment names (no "/"): the CRD refuses anything else.
            "defaultModel": mdl.replace("/", "-") if ptype == "azure" else mdl,
            "apiKey": key,
            **(
                {"baseURL": url or "https://llm.example.com/v1"}
                if url or ptype in ("custom", "azure")
                else {}
            ),
        },
        "routing": {
            "auto": auto,
            "models": {"fast": "gpt-oss-20b" if ptype == "azure" else "openai/gpt-oss-20b"},
        },
        "router": {"replicas": reps},
        "access": {"podSelector": {"matchLabels": {"app": "agent"}}},
    },
    st.sampled_from(["BYO", "BYO", "Managed"]),
    st.sampled_from(["openai", "openrouter", "groq", "anthropic", "ollama", "custom", "azure"]),
    st.sampled_from([None, "https://llm.example.com/v1", "http://vllm.models.svc:8000/v1"]),
    st.sampled_from(["gpt-4o-mini", "qwen/qwen3-30b-a3b-instruct"]),
    st.sampled_from([{"secretKeyRef": {"name": "k"}}, {"sealed": SEALED_OK}]),
    st.booleans(),
    st.integers(min_value=1, max_value=2),
)
# ... with up to three hostile parts, each put at one path.
MUTATIONS: list[tuple[tuple[str, ...], st.SearchStrategy[Any]]] = [
    (("mode",), junk),
    (("active",), junk),
    (("provider",), st.one_of(st.just({}), junk)),
    (("provider", "type"), provider_type),
    (("provider", "baseURL"), base_url),
    (("provider", "baseURL"), base_url),
    (("provider", "defaultModel"), model),
    (("provider", "apiKey"), api_key),
    (("provider", "apiKey", "secretKeyRef", "name"), k8s_name),
    (("provider", "azure"), st.fixed_dictionaries({"apiVersion": weird_text})),
    (("provider", "unknownField"), junk),
    (("routing", "auto"), junk),
    (("routing", "models"), st.dictionaries(st.sampled_from(["code", "turbo"]), model)),
    (("routing", "models", "vision"), model),
    (("router", "replicas"), replicas),
    (("router", "resources"), resources),
    (("access", "podSelector"), selector),
    (("access", "podSelector", "matchLabels"), st.dictionaries(label_key, weird_text, max_size=2)),
    (("extra",), junk),
    (("status",), st.just({"apiKeyPrefix": "sk-toolong-prefix"})),
]
mutation = st.integers(min_value=0, max_value=len(MUTATIONS) - 1).flatmap(
    lambda i: st.tuples(st.just(MUTATIONS[i][0]), MUTATIONS[i][1])
)


def _put(spec: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    node: Any = spec
    for part in where[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(part, {})
    if isinstance(node, dict):
        node[where[-1]] = value


def _mutated(base: dict[str, Any], muts: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    spec = json.loads(json.dumps(base))
    for where, value in muts:
        _put(spec, where, value)
    return spec


BASE: dict[str, Any] = {
    "mode": "BYO",
    "provider": {"type": "openai", "defaultModel": "m", "apiKey": {"secretKeyRef": {"name": "k"}}},
}
# (a valid base, the base with hostile parts): created directly, or as an update of the base
case_strategy = st.tuples(valid_spec, st.lists(mutation, max_size=3)).map(
    lambda t: (t[0], _mutated(*t))
)

# Found by this test: accepted by the CRD, then refused by the API server on the children
# (NetworkPolicy selector, Deployment quantities) -> ApplyFailed. Now refused at apply time
# (CRD schema/CEL) and by the Python models alike.
FOUND: list[tuple[dict[str, Any], str]] = [
    (
        _mutated(BASE, [(("access", "podSelector"), {"matchLabels": {"bad key": "x"}})]),
        "spec.access.podSelector.matchLabels",
    ),
    (
        _mutated(BASE, [(("access", "podSelector"), {"matchLabels": {"app": "not ok!"}})]),
        "spec.access.podSelector.matchLabels",
    ),
    (
        _mutated(
            BASE,
            [(("access", "podSelector"), {"matchExpressions": [{"key": "a", "operator": "In"}]})],
        ),
        "spec.access.podSelector.matchExpressions",
    ),
    (
        _mutated(BASE, [(("router", "resources"), {"requests": {"cpu": "abc"}})]),
        "spec.router.resources",
    ),
    (
        _mutated(BASE, [(("router", "resources"), {"limits": {"memory": "-1Gi"}})]),
        "spec.router.resources",
    ),
]


@pytest.mark.parametrize(("spec", "field"), FOUND, ids=lambda x: str(x)[:40])
def test_python_model_refuses_what_the_crd_now_refuses(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        LLMConfigSpec.model_validate(spec)
    assert field.removeprefix("spec.") in str(err.value)  # pydantic paths start below spec


@pytest.mark.cluster
def test_api_server_refuses_what_broke_children(kube: Kube, crd: Any) -> None:
    for spec, field in FOUND:
        with pytest.raises(KubeError) as err:
            kube.request(
                "POST",
                llmc_path("default"),
                body=llmconfig("found", spec),
                query=[("dryRun", "All")],
            )
        assert err.value.status == 422
        assert field in str(err.value), str(err.value)


# --- the test -------------------------------------------------------------------------------


def _pydantic_accepts(spec: dict[str, Any]) -> str | None:
    try:
        LLMConfigSpec.model_validate(spec)
    except ValidationError as e:
        return str(e).splitlines()[0] + ": " + str(e.errors()[0]["msg"])
    return None


@pytest.mark.cluster
def test_hostile_specs(kube: Kube, running_operator: Any, namespace: str) -> None:
    ns = namespace
    log_start = len(running_operator.log())
    key_secret(kube, ns, "k", "sk-hostile-0123456789abcdef")
    create_llmc(kube, ns, "control", {"mode": "Managed"})
    wait_ready(kube, ns, "control")

    stats: Counter[str] = Counter()
    accepted: list[tuple[str, dict[str, Any]]] = []
    refusals: Counter[str] = Counter()
    disagreements: list[tuple[dict[str, Any], str]] = []
    t0 = time.monotonic()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=case_strategy, strict=st.booleans(), update=st.booleans())
    @example(case=(BASE, FOUND[0][0]), strict=True, update=True)
    @example(case=(BASE, FOUND[2][0]), strict=True, update=False)
    @example(case=(BASE, FOUND[3][0]), strict=False, update=True)
    @example(
        case=(BASE, _mutated(BASE, [(("provider", "defaultModel"), "\u202egpt")])),
        strict=True,
        update=False,
    )
    def attempt(case: tuple[dict[str, Any], dict[str, Any]], strict: bool, update: bool) -> None:
        base, spec = case
        stats["generated"] += 1
        name = f"h{stats['generated']}"
        query = [("fieldValidation", "Strict" if strict else "Warn")]
        if update:  # a valid object first, then the hostile spec as an update
            stats["updates"] += 1
            kube.request("POST", llmc_path(ns), body=llmconfig(name, base))
        try:
            if update:
                created = kube.request(
                    "PATCH",
                    llmc_path(ns, name),
                    body=[{"op": "replace", "path": "/spec", "value": spec}],
                    query=query,
                    content_type="application/json-patch+json",
                )
            else:
                created = kube.request(
                    "POST", llmc_path(ns), body=llmconfig(name, spec), query=query
                )
        except KubeError as e:
            stats["refused"] += 1
            msg = str(e)
            assert e.status in (400, 422), f"refused with {e.status}: {msg[:300]}"  # noqa: PT017
            # A patch refused while decoding quotes the whole object first; the reason is last.
            reason = msg.rsplit('": ', 1)[-1] if "patch: Invalid value" in msg else msg
            field = FIELD.search(reason)
            assert field, f"refusal does not name the field: {msg[:300]}"
            refusals[field.group(0)] += 1
            if update:
                accepted.append((name, {}))  # the base was accepted: must still be consistent
            return
        stats["accepted"] += 1
        stored = created["spec"]
        problem = _pydantic_accepts(stored)
        if problem:
            disagreements.append((stored, problem))
        accepted.append((name, created))

    attempt()
    gen_seconds = time.monotonic() - t0

    # The operator handles every accepted object: status at the current generation.
    def handled() -> bool:
        for name, _ in accepted:
            obj = kube.get(llmc_path(ns, name))
            assert obj is not None
            if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"]["generation"]:
                return False
        return True

    wait_for(f"operator to handle {len(accepted)} accepted specs", handled, timeout=90)
    outcome: Counter[str] = Counter()
    for name, _ in accepted:
        obj = kube.get(llmc_path(ns, name))
        assert obj is not None
        synced = condition(obj, "SecretSynced")
        dep = kube.get(child_paths(ns, name)["deployment"])
        outcome[f"SecretSynced={synced.get('status')}/{synced.get('reason')}"] += 1
        # Nothing half-applied: no reconcile stopped between children; a router that
        # exists runs exactly the config the status reports.
        assert synced.get("reason") != "ApplyFailed", f"{name}: {synced}"
        if synced.get("status") == "True":
            assert dep is not None, f"{name}: SecretSynced but no Deployment"
            hash_ = dep["spec"]["template"]["metadata"]["annotations"]["byollm.io/config-hash"]
            assert hash_ == obj["status"]["configHash"], f"{name}: Deployment at another config"
        elif obj["metadata"]["generation"] == 1:
            assert dep is None, f"{name}: refused ({synced}) but a router Deployment exists"

    assert running_operator.proc.poll() is None, "the operator died"
    log = running_operator.log()[log_start:]
    assert "Traceback" not in log, log[-3000:]
    patch_spec(kube, ns, "control", {"router": {"replicas": 2}})
    wait_ready(kube, ns, "control")  # still reconciling others

    print(
        f"\nhostile specs: {stats['generated']} generated in {gen_seconds:.1f}s, "
        f"{stats['refused']} refused by the API server (400/422 naming spec.*), "
        f"{stats['accepted']} accepted and handled by the operator; "
        f"{stats['updates']} of the {stats['generated']} sent as updates of a valid object"
    )
    print("  operator outcomes: " + json.dumps(dict(outcome)))
    print("  top refusals: " + json.dumps(dict(refusals.most_common(8))))
    assert not disagreements, "API server accepted what the Python model refuses:\n" + "\n".join(
        f"  {json.dumps(s)[:300]} -> {p}" for s, p in disagreements[:5]
    )
    assert stats["accepted"] >= 5, "too few accepted examples to exercise the operator"
    assert stats["refused"] >= 20
