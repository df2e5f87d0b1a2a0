"""The auto-router: pick one of six categories for a request, and its model.

Cheap rules run first and make no upstream call (image parts -> vision, a long input ->
longContext); only then is the tenant's fast model asked to classify a bounded excerpt.
The classifier is injected (:data:`Classifier`) so the app can send it through the
tenant's own upstream (BYO) or the shared LiteLLM (Managed) -- never anywhere else --
and so tests and the evaluation script can drive the same :func:`decide` logic.

Nothing here logs: the classifier's prompt is the tenant's text and its answer can echo
it. The outcome is carried in :attr:`Decision.reason` for headers and metrics instead.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx
import orjson

from byollm_router.contract import Category

__all__ = [
    "AUTO_MODEL",
    "CLASSIFIER_SYSTEM_PROMPT",
    "DEFAULT_CLASSIFIER_TIMEOUT_S",
    "DEFAULT_LONG_CONTEXT_TOKENS",
    "Classifier",
    "Decision",
    "classifier_messages",
    "classifier_request_body",
    "decide",
    "estimate_tokens",
    "parse_category",
    "rule_category",
    "wants_auto",
]

AUTO_MODEL: Final = "auto"

# ~32k tokens: beyond what small/fast models serve well, far below what long-context
# models (e.g. gemini-2.5-flash, 1M) accept. The estimate is chars/4, so 128k characters.
DEFAULT_LONG_CONTEXT_TOKENS: Final = 32_000
CHARS_PER_TOKEN: Final = 4

# The classifier sits in front of every auto request; a slow answer costs more than a
# wrong one (a wrong one still gets served by the balanced model).
DEFAULT_CLASSIFIER_TIMEOUT_S: Final = 2.0

# OpenAI chat ("image_url"), Responses-style ("input_image") and bare "image" parts.
_IMAGE_PART_TYPES: Final = frozenset({"image_url", "input_image", "image"})

# Bounds on what the classifier sees: the last few user turns, each cut to head + tail.
_EXCERPT_TURNS: Final = 2
_EXCERPT_HEAD_CHARS: Final = 1200
_EXCERPT_TAIL_CHARS: Final = 300
_EXCERPT_TOTAL_CHARS: Final = 3000
# Only the start of the answer is parsed: a one-word answer never needs more.
_ANSWER_SCAN_CHARS: Final = 300
CLASSIFIER_MAX_TOKENS: Final = 64

CLASSIFIER_SYSTEM_PROMPT: Final = (
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


class Table(Protocol):
    """The routing table as the auto-router reads it (the router's ``config.Routing``, or
    the contract's ``RoutingTable``)."""

    @property
    def auto(self) -> bool: ...

    @property
    def models(self) -> Mapping[Category, str]: ...


@dataclass(frozen=True)
class Decision:
    """What the auto-router chose, and why (the reason goes into headers/metrics)."""

    category: Category
    model: str
    reason: str


# (messages, model, timeout_s) -> the fast model's text answer.
Classifier = Callable[[list[dict[str, Any]], str, float], Awaitable[str]]


def wants_auto(body: Mapping[str, Any], table: Table) -> bool:
    """True for ``model: "auto"``, or for a request with no model when the table says so."""
    model = body.get("model")
    if model is None or model == "":
        return table.auto
    return bool(model == AUTO_MODEL)


# --- rules --------------------------------------------------------------------------


def _rule_scan(messages: Any) -> tuple[bool, int]:
    """One pass over the messages: (has an image part, characters of text).

    Hand-rolled rather than serialising the body: this runs on every auto request and the
    rule-only path has a budget of a fraction of a millisecond.
    """
    chars = 0
    if not isinstance(messages, list):
        return False, 0
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    ptype = part.get("type")
                    if isinstance(ptype, str) and ptype in _IMAGE_PART_TYPES:  # lists: unhashable
                        return True, chars
                    text = part.get("text")
                    if isinstance(text, str):
                        chars += len(text)
                elif isinstance(part, str):
                    chars += len(part)
        calls = msg.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    fn = call.get("function")
                    if isinstance(fn, dict):
                        args = fn.get("arguments")
                        if isinstance(args, str):
                            chars += len(args)
    return False, chars


def estimate_tokens(messages: Any) -> int:
    """A cheap token estimate (characters / 4) of all message text."""
    return _rule_scan(messages)[1] // CHARS_PER_TOKEN


def rule_category(
    body: Mapping[str, Any], long_context_tokens: int = DEFAULT_LONG_CONTEXT_TOKENS
) -> Category | None:
    """The category the cheap rules assign, or None when the classifier must decide.

    Vision wins over length: a long request with an image still needs a model that sees.
    """
    has_image, chars = _rule_scan(body.get("messages"))
    if has_image:
        return Category.VISION
    if chars > long_context_tokens * CHARS_PER_TOKEN:
        return Category.LONG_CONTEXT
    return None


# --- classifier prompt --------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return ""


def _clip(text: str) -> str:
    if len(text) <= _EXCERPT_HEAD_CHARS + _EXCERPT_TAIL_CHARS:
        return text
    return f"{text[:_EXCERPT_HEAD_CHARS]}\n[...]\n{text[-_EXCERPT_TAIL_CHARS:]}"


def classifier_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The classifier's prompt: the system prompt plus a bounded excerpt of the request.

    Only the last user turns go in (the latest ask is what decides the category), each
    clipped to head + tail, so the call stays cheap whatever the request's size.
    """
    messages = body.get("messages")
    turns: list[str] = []
    if isinstance(messages, list):
        for msg in reversed(messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                text = _text_of(msg.get("content")).strip()
                if text:
                    turns.append(_clip(text))
                    if len(turns) >= _EXCERPT_TURNS:
                        break
        if not turns:  # no user turn: fall back to the last message of any role
            for msg in reversed(messages):
                if isinstance(msg, dict):
                    text = _text_of(msg.get("content")).strip()
                    if text:
                        turns.append(_clip(text))
                        break
    excerpt = "\n\n---\n\n".join(reversed(turns))[:_EXCERPT_TOTAL_CHARS]
    return [
        {"role": "system", "content": CLASSIFIER_SYSTEM_PROMPT},
        {"role": "user", "content": f"Request:\n{excerpt}\n\nCategory:"},
    ]


def classifier_request_body(messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """The chat-completions body a :data:`Classifier` should send (non-streaming, terse)."""
    return {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": CLASSIFIER_MAX_TOKENS,
        "stream": False,
    }


# --- answer parsing -----------------------------------------------------------------

_THINK_RE: Final = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_WORD_RE: Final = re.compile(r"[a-z]+")
_JSON_OBJ_RE: Final = re.compile(r"\{[^{}]*\}")

_SYNONYMS: Final[dict[str, Category]] = {
    "fast": Category.FAST,
    "quick": Category.FAST,
    "simple": Category.FAST,
    "balanced": Category.BALANCED,
    "balance": Category.BALANCED,
    "general": Category.BALANCED,
    "default": Category.BALANCED,
    "reasoning": Category.REASONING,
    "reason": Category.REASONING,
    "longcontext": Category.LONG_CONTEXT,
    "long": Category.LONG_CONTEXT,
    "vision": Category.VISION,
    "image": Category.VISION,
    "visual": Category.VISION,
    "code": Category.CODE,
    "coding": Category.CODE,
    "programming": Category.CODE,
}


def _categories_in(text: str) -> list[Category]:
    """Categories named in text, in order ("long context"/"long_context" count as one)."""
    found: list[Category] = []
    for word in _WORD_RE.findall(text.lower()):
        cat = _SYNONYMS.get(word)
        if cat is not None and cat not in found:
            found.append(cat)
    return found


def parse_category(answer: str) -> Category | None:
    """Read a category from the classifier's answer; None when it is garbage.

    Accepts a bare word in any case or punctuation, synonyms ("long context",
    "long_context", "coding"), a JSON object with a "category" key, and a leading
    ``<think>`` block. An answer naming several categories is ambiguous, so garbage --
    unless its first word is a category ("code, maybe reasoning").
    """
    text = _THINK_RE.sub("", answer[: _ANSWER_SCAN_CHARS * 4])[:_ANSWER_SCAN_CHARS].strip()
    if not text:
        return None
    match = _JSON_OBJ_RE.search(text)
    if match is not None:
        try:
            obj = orjson.loads(match.group(0))
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            for key in ("category", "label", "class"):
                value = obj.get(key)
                if isinstance(value, str):
                    return parse_category(value)
    found = _categories_in(text)
    if len(found) == 1:
        return found[0]
    if found:
        first = _WORD_RE.search(text.lower())
        if first is not None and _SYNONYMS.get(first.group(0)) is found[0]:
            return found[0]
    return None


# --- the decision -------------------------------------------------------------------


def _model_for(category: Category, table: Table, default_model: str) -> str:
    """The category's model, else the default model.

    Managed routers have no default model (LLM_MODEL is wiped), so there the table's
    balanced model stands in before giving up with "" (the upstream then answers 4xx).
    """
    return table.models.get(category) or default_model or table.models.get(Category.BALANCED, "")


async def decide(
    body: Mapping[str, Any],
    table: Table,
    default_model: str,
    classify: Classifier,
    timeout: float,  # noqa: ASYNC109 -- the contract's signature; enforced below
    *,
    long_context_tokens: int = DEFAULT_LONG_CONTEXT_TOKENS,
) -> Decision:
    """Choose the category and model for an auto-routed request.

    Never raises for a classifier failure: a timeout, an error or an unreadable answer
    all mean "balanced", so auto-routing degrades to the tenant's general model rather
    than failing the request. A category without a model in the table serves the
    default model.
    """
    ruled = rule_category(body, long_context_tokens)
    if ruled is not None:
        return Decision(ruled, _model_for(ruled, table, default_model), f"rule:{ruled.value}")

    fast_model = _model_for(Category.FAST, table, default_model)
    reason = "classifier"
    try:
        async with asyncio.timeout(timeout):
            answer = await classify(classifier_messages(body), fast_model, timeout)
    except (TimeoutError, httpx.TimeoutException):
        category: Category | None = None
        reason = "classifier:timeout"
    except Exception:  # any upstream/adapter failure: fall back, never fail the request
        category = None
        reason = "classifier:error"
    else:
        category = parse_category(answer) if isinstance(answer, str) else None
        if category is None:
            reason = "classifier:garbage"
    if category is None:
        category = Category.BALANCED
    return Decision(category, _model_for(category, table, default_model), reason)
