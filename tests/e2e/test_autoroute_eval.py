"""The accuracy evaluator's harness, run against the stub provider.

The stub is not a classifier: for model ``stub-classify-balanced`` it answers "balanced"
to everything. So this proves the harness (every request decided through ``decide()``,
classifier calls made over HTTP, accuracy and confusion computed), and the expected
figures follow from that constant answer -- they say nothing about any real model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from router_harness import ROOT, StubServer

SCRIPT = ROOT / "tests" / "autoroute_eval" / "evaluate.py"
DATA = ROOT / "tests" / "autoroute_eval" / "requests.jsonl"


def _evaluate(
    stub: StubServer,
    key_env: str,
    model: str,
    *args: str,
    env: dict[str, str],
    timeout: float,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The evaluator against the stub, the API key read from the variable ``key_env``."""
    cmd = [sys.executable, str(SCRIPT), "--base-url", f"{stub.url}/v1", "--api-key-env", key_env]
    return subprocess.run(
        [*cmd, "--model", model, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def test_eval_set_has_a_held_out_split_in_every_category() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    assert len(rows) >= 150
    assert len({r["id"] for r in rows}) == len(rows)
    for category in ("fast", "balanced", "reasoning", "longContext", "vision", "code"):
        splits = [r["split"] for r in rows if r["category"] == category]
        # A third held out (never looked at while tuning the classifier), per category.
        assert splits.count("heldout") >= 5, category
        assert splits.count("tune") >= 2 * splits.count("heldout") - 1, category
    assert {r["split"] for r in rows} == {"tune", "heldout"}


def test_evaluator_runs_against_stub(stub: StubServer, tmp_path: Path) -> None:
    stub.clear()
    out = tmp_path / "report.json"
    proc = _evaluate(
        stub,
        "EVAL_STUB_KEY",
        "stub-classify-balanced",
        "--json",
        str(out),
        env={**os.environ, "EVAL_STUB_KEY": "sk-eval-stub"},
        timeout=120,
        check=True,
    )
    assert "overall" in proc.stdout
    assert "confusion" in proc.stdout
    assert "sk-eval-stub" not in proc.stdout + proc.stderr
    rep = json.loads(out.read_text())

    n = sum(1 for line in DATA.read_text().splitlines() if line.strip())
    assert rep["total"] == n >= 150
    assert len(rep["results"]) == n
    assert 0.0 <= rep["accuracy"] <= 1.0
    # Image and length rules decide vision/longContext without the classifier.
    assert rep["reasons"]["rule:vision"] == rep["per_category"]["vision"]["total"]
    assert rep["reasons"]["rule:longContext"] == rep["per_category"]["longContext"]["total"]
    assert rep["reasons"]["classifier"] == rep["classifier"]["total"]
    # Every classifier-decided request made exactly one call, to the given model.
    calls = [e for e in stub.requests() if e["path"] == "/v1/chat/completions"]
    assert len(calls) == rep["classifier"]["total"]
    assert {e["model"] for e in calls} == {"stub-classify-balanced"}
    # The constant answer makes the figures predictable: a check of the arithmetic.
    results = rep["results"]
    by_clf = [r for r in results if not r["reason"].startswith("rule:")]
    assert {r["predicted"] for r in by_clf} == {"balanced"}
    ruled_ok = sum(r["label"] == r["predicted"] for r in results if r["reason"].startswith("rule:"))
    assert rep["correct"] == ruled_ok + sum(r["label"] == "balanced" for r in by_clf)
    assert rep["splits"]["tune"]["total"] + rep["splits"]["heldout"]["total"] == n
    # Text rules decide only unambiguous requests: on the labelled set, never a wrong one.
    text_ruled = [r for r in results if r["reason"] in ("rule:code", "rule:fast", "rule:reasoning")]
    assert len(text_ruled) >= 10
    assert all(r["label"] == r["predicted"] for r in text_ruled)


def test_evaluator_refuses_missing_key_env(stub: StubServer) -> None:
    proc = _evaluate(
        stub,
        "EVAL_KEY_THAT_IS_NOT_SET",
        "m",
        env={k: v for k, v in os.environ.items() if k != "EVAL_KEY_THAT_IS_NOT_SET"},
        timeout=60,
    )
    assert proc.returncode == 2
    assert "EVAL_KEY_THAT_IS_NOT_SET" in proc.stderr


def test_accuracy_report_is_generated(stub: StubServer, tmp_path: Path) -> None:
    """The report script's plumbing, against the stub answering "code" to everything: every
    variant runs, both splits and the latency/rule-share section are in the document."""
    out = tmp_path / "accuracy.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "autoroute_eval" / "accuracy.py"),
            "--base-url",
            f"{stub.url}/v1",
            "--model",
            "stub-classify-code",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "acc.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "wrote" in proc.stderr
    doc = out.read_text()
    for variant in ("baseline", "+prompt", "+parsing", "+text rules", "+constrained", "default"):
        assert f"| {variant} |" in doc
    assert "### heldout split" in doc
    assert "Decided by rules alone" in doc
    data = json.loads((tmp_path / "acc.json").read_text())
    default = data["reports"]["default"]
    # Everything the rules leave is answered "code" by the stub, so code is all correct.
    assert default["per_category"]["code"]["accuracy"] == 1.0
    assert (
        default["by_split"]["heldout"]["total"] + default["by_split"]["tune"]["total"]
        == (default["total"])
    )
