"""kstatus conditions (Ready, Reconciling, Stalled) and the Argo CD health check.

The Lua script runs in a real Lua 5.1 interpreter with only the libraries Argo CD gives
health scripts. Its case table is ``deploy/argocd/health_test.yaml`` (Argo CD's own test
format); on top of it, every combination of detail conditions the operator can write is
judged by both the operator's rule and the Lua script, which must agree.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml
from stubs.gitops import HEALTH_LUA, argocd_health

from byollm.api import Condition
from byollm.kube import KubeError
from byollm_operator import builders
from byollm_operator import conditions as c
from byollm_operator.reconcile import write_refused
from byollm_router import contract

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
CM_KEY = "resource.customizations.health.byollm.io_LLMConfig"
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize("case", CASES, ids=[Path(t["inputPath"]).stem for t in CASES])
def test_health_lua_case_table(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert argocd_health(obj) == case["healthStatus"]


def test_case_table_covers_every_verdict_and_every_file() -> None:
    assert {t["healthStatus"]["status"] for t in CASES} == {"Healthy", "Progressing", "Degraded"}
    listed = {Path(t["inputPath"]).name for t in CASES}
    assert listed == {p.name for p in (ARGOCD / "testdata").glob("*.yaml")}


def test_harness_refuses_what_argocd_refuses() -> None:
    """The interpreter is as bare as Argo CD's: a script using os or io cannot pass here."""
    with pytest.raises(lua51.LuaError):
        argocd_health({"metadata": {}}, "return {status = os.time()}")
    with pytest.raises(lua51.LuaError):
        argocd_health({"metadata": {}}, "io.write('x') return {}")
    assert argocd_health({"metadata": {}}, "return {status = obj.x or 'Unknown', message = ''}")


def test_lua_stalled_reasons_are_the_operators() -> None:
    text = HEALTH_LUA.read_text()
    block = re.search(r"local STALLED_REASONS = \{(.*?)\n\}", text, re.S)
    assert block, "health.lua lost its STALLED_REASONS table"
    assert set(re.findall(r"^\s*(\w+) = true,$", block[1], re.M)) == c.STALLED_REASONS


def test_argocd_cm_snippet_and_docs_hold_health_lua_verbatim() -> None:
    lua = HEALTH_LUA.read_text()
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert cm["data"] == {CM_KEY: lua}
    docs = (ROOT / "docs" / "gitops.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", docs, re.S)]
    assert any(isinstance(b, dict) and (b.get("data") or {}).get(CM_KEY) == lua for b in blocks)


# --- the operator's rule and the Lua verdict, over every combination --------------------

SECRET = [
    ("True", c.RECONCILED),
    ("False", c.SECRET_NOT_FOUND),
    ("False", c.SECRET_KEY_NOT_FOUND),
    ("False", c.SECRET_NOT_OPTED_IN),
    ("False", c.UNSEAL_FAILED),
    ("False", c.INVALID_SPEC),
    ("False", c.APPLY_FAILED),
    ("False", c.APPLY_REFUSED),
    ("Unknown", c.PENDING),
]
ROUTER = [
    ("True", c.AVAILABLE),
    ("False", c.ROLLING_OUT),
    ("False", c.UNAVAILABLE),
    ("False", c.PROGRESS_DEADLINE_EXCEEDED),
    ("Unknown", c.PENDING),
]
CREDS = [
    ("True", c.VALID),
    ("False", c.INVALID_CREDENTIALS),
    ("False", c.UPSTREAM_BLOCKED),
    ("False", c.ENDPOINT_NOT_FOUND),
    ("Unknown", c.UNREACHABLE),
    ("Unknown", c.UNEXPECTED_RESPONSE),
    ("Unknown", c.NOT_VERIFIABLE),
    ("Unknown", c.MANAGED_MODE),
    ("Unknown", c.PROBE_DISABLED),
    ("Unknown", c.PENDING),
]
COMBOS = list(itertools.product(SECRET, ROUTER, CREDS))


def operator_status(
    secret: tuple[str, str], router: tuple[str, str], creds: tuple[str, str], gen: int = 4
) -> list[dict[str, Any]]:
    """The conditions the operator's status writer derives from three detail conditions,
    as the API server stores them."""
    conds: list[Condition] = []
    for t, (st, reason) in zip(c.DETAIL_TYPES, (secret, router, creds), strict=True):
        conds = c.set_condition(conds, t, st, reason, f"{t} is {st}", gen)
    conds = c.set_condition(conds, c.READY, *c.ready_from(conds), gen)
    reconciling, stalled = c.summary(conds)
    conds = c.set_condition(conds, c.RECONCILING, *reconciling, gen)
    conds = c.set_condition(conds, c.STALLED, *stalled, gen)
    return [x.model_dump(by_alias=True, mode="json") for x in conds]


def as_object(conds: list[dict[str, Any]], gen: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": "byollm.io/v1alpha1",
        "kind": "LLMConfig",
        "metadata": {"name": "acme", "namespace": "tenant-acme", "generation": gen},
        "status": {"observedGeneration": gen, "mode": "BYO", "conditions": conds},
    }


def test_exactly_one_of_ready_reconciling_stalled_is_true() -> None:
    for combo in COMBOS:
        conds = operator_status(*combo)
        true = [x["type"] for x in conds if x["status"] == "True"]
        summary = [t for t in (c.READY, c.RECONCILING, c.STALLED) if t in true]
        assert len(summary) == 1, (combo, summary)
        stalled = any(st == "False" and r in c.STALLED_REASONS for st, r in combo)
        assert (c.STALLED in summary) == stalled, combo
        assert [x["type"] for x in conds] == list(c.TYPES)
        assert all(x["observedGeneration"] == 4 for x in conds)


def test_lua_agrees_with_the_operator_on_every_combination() -> None:
    verdict = {c.READY: "Healthy", c.RECONCILING: "Progressing", c.STALLED: "Degraded"}
    for combo in COMBOS:
        conds = operator_status(*combo)
        (summary,) = (x for x in conds if x["type"] in verdict and x["status"] == "True")
        health = argocd_health(as_object(conds))
        assert health["status"] == verdict[summary["type"]], (combo, health)
        assert health["message"], combo
        # with Reconciling/Stalled dropped (a status from before they existed), the
        # fallback on the detail conditions reaches the same verdict
        older = [x for x in conds if x["type"] not in (c.RECONCILING, c.STALLED)]
        assert argocd_health(as_object(older))["status"] == health["status"], combo


def test_a_spec_change_is_progressing_until_observed() -> None:
    conds = operator_status(SECRET[0], ROUTER[0], CREDS[0], gen=4)
    obj = as_object(conds, gen=4)
    assert argocd_health(obj)["status"] == "Healthy"
    obj["metadata"]["generation"] = 5  # kubectl apply of a new spec
    assert argocd_health(obj)["status"] == "Progressing"
    stalled = as_object(operator_status(SECRET[1], ROUTER[0], CREDS[0], gen=4), gen=5)
    assert argocd_health(stalled)["status"] == "Progressing"  # old failure, new spec


# --- RollingOut Event: field names, never values -----------------------------------------


def test_changed_fields_names_fields_never_values() -> None:
    old = {
        contract.LLM_MODE: "BYO",
        contract.LLM_PROVIDER: "openai",
        contract.LLM_BASE_URL: "https://api.openai.com/v1",
        contract.LLM_API_KEY: "sk-old-secret-value",
        contract.LLM_MODEL: "gpt-4o-mini",
    }
    new = {**old, contract.LLM_API_KEY: "sk-new-secret-value", contract.LLM_MODEL: "gpt-4o"}
    assert builders.changed_fields(old, new) == ["key", "model"]
    routed = {**old, contract.LLM_ROUTING: '{"auto":true}'}
    assert builders.changed_fields(old, routed) == ["routing"]
    managed = {contract.LLM_MODE: "Managed", contract.BYOLLM_MANAGED_URL: "http://litellm:4000/v1"}
    fields = builders.changed_fields(old, managed)
    assert fields == ["mode", "provider", "baseURL", "key", "model", "managedURL"]
    assert builders.changed_fields(old, old) == ["routerToken"]  # the hash's only other input
    assert builders.changed_fields(old, {**old, "BYOLLM_NEW_KNOB": "1"}) == ["BYOLLM_NEW_KNOB"]
    for f in fields:
        assert all(v not in f for v in (*old.values(), *managed.values()))


def test_secret_env_reads_the_live_config_secret() -> None:
    env = {contract.LLM_MODE: "BYO", contract.LLM_API_KEY: "sk-x"}
    owner = builders.Owner(name="acme", namespace="t", uid="u")
    assert builders.secret_env(builders.llm_secret(owner, env)) == env
    assert builders.secret_env(None) == {}


@pytest.mark.parametrize(
    ("status", "refused"),
    [(400, True), (403, True), (422, True), (404, True), (409, False), (408, False),
     (429, False), (500, False), (503, False)],
)  # fmt: skip
def test_only_writes_a_retry_cannot_fix_stall(status: int, refused: bool) -> None:
    """ApplyRefused (Stalled) for a 4xx the same write gets again; ApplyFailed otherwise."""
    assert write_refused(KubeError(status, "x", "y")) is refused
