"""Measure the auto-router's accuracy on a labelled set of agent requests.

Every request in ``requests.jsonl`` goes through the router's real
:func:`byollm_router.autoroute.decide` -- the cheap rules first, then the classifier call
with the given model -- so the figure is what a tenant would get, not a re-implementation.
The report has overall accuracy, accuracy of the classifier-decided requests alone (the
rules are deterministic; mixing them in flatters the classifier), per-category accuracy,
a confusion matrix, decision reasons (timeouts/errors/garbage) and classifier latency.

Run against a real provider (the key is read from the environment variable you name,
never passed on the command line, and never printed)::

    export OPENROUTER_API_KEY=sk-or-v1-...
    .venv/bin/python tests/autoroute_eval/evaluate.py \\
        --base-url https://openrouter.ai/api/v1 \\
        --api-key-env OPENROUTER_API_KEY \\
        --model openai/gpt-oss-20b --timeout 10 --json /tmp/autoroute-eval.json

Any OpenAI-compatible ``/chat/completions`` endpoint works (OpenAI, Groq, Ollama Cloud,
a local llama.cpp/vLLM server). ``--timeout`` is the classifier timeout passed to
``decide()``; raise it above the router's production value when measuring a slow model's
accuracy rather than its latency. ``--min-accuracy`` makes the exit status fail below a
bar, for a nightly job against a real provider.

In CI the same script runs against the stub provider (``tests/stubs/provider.py``) only to
prove the harness works; the stub's accuracy says nothing about any real model.

The longContext requests are generated here from a template (``generate``: kind and
token count) instead of being stored, to keep the data file small.

Each request has a ``split``: ``tune`` (look at these while improving the classifier) or
``heldout`` (a third of each category, chosen by id hash, never looked at while tuning);
the report gives accuracy for both, so an improvement that only fits the tuned requests
shows. ``--split`` runs one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from byollm_router.autoroute import (
    CONSTRAINED_FORMATS,
    Classifier,
    Decision,
    classifier_request_body,
    decide,
)
from byollm_router.contract import Category, RoutingTable

HERE = Path(__file__).resolve().parent
DEFAULT_REQUESTS = HERE / "requests.jsonl"
FILLER_MARK = "{{FILLER}}"
CATEGORIES = [c.value for c in Category]


# --- the data set -------------------------------------------------------------------

_WORDS = (  # noqa: SIM905 -- a word list reads better as text
    "the order customer invoice shipment delayed account update review meeting team "
    "quarter budget payment request service region latency error retry token session "
    "contract clause party notice period data retention liability schedule owner"
).split()


def _filler_line(kind: str, rng: random.Random, n: int) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 18)))
    if kind == "log":
        status = rng.choice([200, 200, 200, 201, 204, 404, 500, 502])
        path = rng.choice(["/v1/orders", "/v1/users", "/v1/payments", "/healthz"])
        return f"2026-11-22T{n % 24:02d}:{n % 60:02d}:{n % 59:02d}Z GET {path} {status} {words}"
    if kind == "transcript":
        return (
            f"[{n // 60:02d}:{n % 60:02d}] {rng.choice(['Ana', 'Ben', 'Priya', 'Eli'])}: {words}."
        )
    if kind == "contract":
        return f"{n // 10 + 1}.{n % 10 + 1} The {words}."
    if kind == "code":
        return f"def handler_{n}(request):  # {words}\n    return process(request, {n})"
    if kind == "tickets":
        return f"Ticket #{10000 + n} ({rng.choice(['billing', 'login', 'export'])}): {words}."
    if kind == "csv":
        cents = rng.randint(500, 90000)
        return f"{n},cust_{rng.randint(1, 400)},{cents / 100:.2f},2026-{n % 12 + 1:02d}-01"
    return f"{words.capitalize()}."


def filler(kind: str, tokens: int, seed: str) -> str:
    """Deterministic text of about ``tokens`` tokens (at the router's 4 chars/token)."""
    rng = random.Random(seed)
    target = tokens * 4
    lines: list[str] = []
    size = 0
    while size < target:
        line = _filler_line(kind, rng, len(lines))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def _expand(value: Any, text: str) -> Any:
    if isinstance(value, str):
        return value.replace(FILLER_MARK, text)
    if isinstance(value, list):
        return [_expand(v, text) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, text) for k, v in value.items()}
    return value


def load_requests(path: Path) -> list[dict[str, Any]]:
    """The labelled requests, with generated ones expanded and ``model`` set to auto."""
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = orjson.loads(line)
        if row["category"] not in CATEGORIES:
            raise ValueError(f"{path}:{lineno}: unknown category {row['category']!r}")
        gen = row.get("generate")
        if gen:
            row["body"] = _expand(row["body"], filler(gen["kind"], gen["tokens"], row["id"]))
        row["body"] = {"model": "auto", **row["body"]}
        rows.append(row)
    return rows


# --- the classifier -----------------------------------------------------------------


def http_classifier(
    client: httpx.AsyncClient, base_url: str, api_key: str, *, constrained: str | None = None
) -> Classifier:
    """A :data:`Classifier` calling an OpenAI-compatible chat-completions endpoint (with the
    router's opt-in constrained output when ``constrained``)."""
    url = base_url.rstrip("/") + "/chat/completions"
    # Real servers (llama-cpp-python) refuse a JSON body not labelled as JSON.
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    async def classify(messages: list[dict[str, Any]], model: str, timeout: float) -> str:
        body = classifier_request_body(messages, model, constrained=constrained)
        resp = await client.post(
            url,
            headers=headers,
            content=orjson.dumps(body),
            timeout=timeout,
        )
        resp.raise_for_status()
        content = resp.json()["choices"][0]["message"].get("content")
        return content if isinstance(content, str) else ""

    return classify


# --- the run ------------------------------------------------------------------------


@dataclass
class Result:
    id: str
    label: str
    predicted: str
    reason: str
    ms: float
    split: str = "tune"


def _acc(correct: int, total: int) -> float | None:
    return round(correct / total, 4) if total else None


def _quantile(sorted_ms: list[float], q: float) -> float | None:
    """The nearest-rank quantile (no interpolation: with ~100 samples p99 is the max-but-one)."""
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * q))], 1)


def report(results: list[Result]) -> dict[str, Any]:
    """Accuracy overall, for classifier-decided requests, per category; confusion; reasons."""
    total = len(results)
    correct = sum(r.label == r.predicted for r in results)
    by_clf = [r for r in results if not r.reason.startswith("rule:")]
    per_cat: dict[str, dict[str, Any]] = {}
    confusion: dict[str, dict[str, int]] = {c: dict.fromkeys(CATEGORIES, 0) for c in CATEGORIES}
    for r in results:
        confusion[r.label][r.predicted] += 1
    for c in CATEGORIES:
        rows = [r for r in results if r.label == c]
        ok = sum(r.label == r.predicted for r in rows)
        per_cat[c] = {"total": len(rows), "correct": ok, "accuracy": _acc(ok, len(rows))}
    lat = sorted(r.ms for r in by_clf)
    clf_ok = sum(r.label == r.predicted for r in by_clf)
    splits: dict[str, dict[str, Any]] = {}
    for split in sorted({r.split for r in results}):
        rows = [r for r in results if r.split == split]
        ok = sum(r.label == r.predicted for r in rows)
        splits[split] = {"total": len(rows), "correct": ok, "accuracy": _acc(ok, len(rows))}
    return {
        "total": total,
        "correct": correct,
        "accuracy": _acc(correct, total),
        "splits": splits,
        "classifier": {
            "total": len(by_clf),
            "correct": clf_ok,
            "accuracy": _acc(clf_ok, len(by_clf)),
        },
        "per_category": per_cat,
        "confusion": confusion,
        "reasons": dict(Counter(r.reason for r in results)),
        "classifier_latency_ms": {
            "p50": _quantile(lat, 0.50),
            "p95": _quantile(lat, 0.95),
            "p99": _quantile(lat, 0.99),
        },
        "results": [r.__dict__ for r in results],
    }


async def run(
    rows: list[dict[str, Any]],
    classify: Classifier,
    model: str,
    timeout: float,
    concurrency: int,
    **decide_options: Any,
) -> list[Result]:
    """Decide every request with ``model`` as the fast (classifier) model; ``decide_options``
    go to :func:`decide` (e.g. ``text_rules=False``)."""
    table = RoutingTable(auto=True, models={Category.FAST: model})
    sem = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> Result:
        async with sem:
            start = time.perf_counter()
            d: Decision = await decide(
                row["body"], table, model, classify, timeout, **decide_options
            )
            ms = (time.perf_counter() - start) * 1000
        split = str(row.get("split", "tune"))
        return Result(row["id"], row["category"], d.category.value, d.reason, ms, split)

    return list(await asyncio.gather(*(one(r) for r in rows)))


def render(rep: dict[str, Any]) -> str:
    """A human-readable summary (no prompts, no answers)."""

    def pct(v: float | None) -> str:
        return "   n/a" if v is None else f"{v * 100:5.1f}%"

    out = [
        f"overall     {pct(rep['accuracy'])}  ({rep['correct']}/{rep['total']})",
        f"classifier  {pct(rep['classifier']['accuracy'])}  "
        f"({rep['classifier']['correct']}/{rep['classifier']['total']}, rules excluded)",
        *(
            f"{split:<12}{pct(v['accuracy'])}  ({v['correct']}/{v['total']})"
            for split, v in rep["splits"].items()
        ),
        "",
        "per category:",
    ]
    for c, v in rep["per_category"].items():
        out.append(f"  {c:<12}{pct(v['accuracy'])}  ({v['correct']}/{v['total']})")
    w = max(len(c) for c in CATEGORIES) + 1
    out += ["", "confusion (rows: label, columns: predicted):"]
    out.append(" " * (w + 2) + "".join(f"{c[:w]:>{w}}" for c in CATEGORIES))
    for label, preds in rep["confusion"].items():
        out.append(f"  {label:<{w}}" + "".join(f"{preds[c]:>{w}}" for c in CATEGORIES))
    out += ["", "reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(rep["reasons"].items()))]
    lat = rep["classifier_latency_ms"]
    out.append(f"classifier latency ms: p50={lat['p50']} p95={lat['p95']} p99={lat['p99']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base-url", required=True, help="OpenAI-compatible base URL (…/v1)")
    p.add_argument("--api-key-env", required=True, help="name of the env var holding the key")
    p.add_argument("--model", required=True, help="the fast model that classifies")
    p.add_argument("--requests", type=Path, default=DEFAULT_REQUESTS)
    p.add_argument("--timeout", type=float, default=10.0, help="classifier timeout, seconds")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--split", choices=["all", "tune", "heldout"], default="all")
    p.add_argument(
        "--constrained",
        choices=sorted(CONSTRAINED_FORMATS),
        help="ask for constrained output in this wire form, as the router does with "
        "BYOLLM_AUTOROUTE_CONSTRAINED set to it",
    )
    p.add_argument("--json", type=Path, help="also write the full report here")
    p.add_argument("--min-accuracy", type=float, help="exit 1 if overall accuracy is below")
    args = p.parse_args(argv)

    api_key = os.environ.get(args.api_key_env)
    if api_key is None:
        print(f"error: environment variable {args.api_key_env} is not set", file=sys.stderr)
        return 2
    rows = load_requests(args.requests)
    if args.split != "all":
        rows = [r for r in rows if r.get("split", "tune") == args.split]

    async def go() -> list[Result]:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            classify = http_classifier(client, args.base_url, api_key, constrained=args.constrained)
            return await run(rows, classify, args.model, args.timeout, args.concurrency)

    rep = report(asyncio.run(go()))
    print(render(rep))
    if args.json:
        args.json.write_bytes(orjson.dumps(rep, option=orjson.OPT_INDENT_2))
    if args.min_accuracy is not None and (rep["accuracy"] or 0) < args.min_accuracy:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
