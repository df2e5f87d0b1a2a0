"""Zero API writes while idle: N LLMConfigs, W seconds of periodic resyncs.

Counted two ways: (1) the API server's audit log (every create/update/patch/delete by the
operator's user, excluding dry-runs; the dry-run compares are counted separately to show
the resyncs really ran), (2) resourceVersion of every LLMConfig and child before/after.
BYOLLM_TEST_IDLE_CONFIGS (default 50) and BYOLLM_TEST_IDLE_WINDOW (seconds, default 60)
size it; the test operator resyncs every BYOLLM_TEST_RESYNC_PERIOD (default 10) seconds,
and the window must see at least one full resync pass (counted in the operator's log).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import child_paths, create_llmc, key_secret, llmc_path, wait_ready
from test_operator_lifecycle import KEY, byo_spec

from byollm.kube import Kube

pytestmark = pytest.mark.cluster

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def _audit(log: Path, start: int, ns: str) -> tuple[int, int, list[str]]:
    """(writes, dry-run compares, write descriptions) by the operator in ``ns`` after byte
    offset ``start``."""
    writes, dry, what = 0, 0, []
    with log.open("rb") as f:
        f.seek(start)
        for line in f:
            ev = json.loads(line)
            if ev.get("user", {}).get("username") != "byollm-operator":
                continue
            ref = ev.get("objectRef") or {}
            if ref.get("namespace") != ns or ev.get("verb") not in WRITE_VERBS:
                continue
            if "dryRun=All" in ev.get("requestURI", ""):
                dry += 1
                continue
            writes += 1
            what.append(f"{ev['verb']} {ref.get('resource')}/{ref.get('name')}")
    return writes, dry, what


def _versions(kube: Kube, ns: str, names: list[str]) -> dict[str, str]:
    out = {}
    for n in names:
        for label, p in {"llmconfig": llmc_path(ns, n), **child_paths(ns, n)}.items():
            obj = kube.get(p)
            out[f"{n}/{label}"] = obj["metadata"]["resourceVersion"] if obj else "absent"
    return out


def test_zero_writes_while_idle(
    kube: Kube, running_operator: Any, control_plane: Any, namespace: str
) -> None:
    audit_log = Path(control_plane.log_dir) / "audit.log"
    if not audit_log.exists():
        pytest.skip("needs the local control plane's audit log")
    n = int(os.environ.get("BYOLLM_TEST_IDLE_CONFIGS", "50"))
    window = float(os.environ.get("BYOLLM_TEST_IDLE_WINDOW", "60"))
    ns = namespace
    key_secret(kube, ns, "acme-openrouter", KEY)
    names = [f"idle-{i:03d}" for i in range(n)]
    t0 = time.monotonic()
    for i, name in enumerate(names):
        # A mix: most BYO (router + key), every fifth Managed.
        create_llmc(kube, ns, name, byo_spec() if i % 5 else {"mode": "Managed"})
    for name in names:
        wait_ready(kube, ns, name, timeout=180)
    settle = time.monotonic() - t0
    time.sleep(3)  # late watch events of the last rollouts

    offset = audit_log.stat().st_size
    passes_before = running_operator.log().count("resync pass:")
    before = _versions(kube, ns, names)
    time.sleep(window)
    after = _versions(kube, ns, names)
    passes = running_operator.log().count("resync pass:") - passes_before
    writes, dry, what = _audit(audit_log, offset, ns)
    changed = [k for k in before if before[k] != after[k]]
    print(
        f"\nidle: {n} LLMConfigs ({len(before)} objects) Ready in {settle:.1f}s; over "
        f"{window:.0f}s idle: {writes} writes by the operator (audit), {len(changed)} "
        f"resourceVersion changes; {passes} full resync passes, {dry} dry-run compares"
    )
    assert writes == 0, what[:20]
    assert not changed, changed[:20]
    assert passes > 0, "no resync happened in the window: the measurement proves nothing"
