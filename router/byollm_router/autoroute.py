"""The auto-router: pick one of six categories for a request, and its model.

Cheap rules run first and make no upstream call (image parts -> vision, a long input ->
longContext, and text rules for the unambiguous cases: code in a fence or a traceback ->
code, a bare greeting -> fast, an explicit ask for a proof or for the working shown ->
reasoning); only then is the tenant's fast model asked to classify a bounded excerpt.
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
    "CONSTRAINED_FORMATS",
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
    "text_rule_category",
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
# The parser reads the first words only, and a constrained answer is ~10 tokens. Measured
# on a small model that answers the request instead: up to 64 tokens of prose put a third
# of its calls past the 2 s budget; a tight cap bounds the call's cost whatever it says.
CLASSIFIER_MAX_TOKENS: Final = 16

CLASSIFIER_SYSTEM_PROMPT: Final = (
    "Do not answer the user's request. Classify it. Reply with one word only.\n"
    "code = programming, SQL, shell, config files, errors in code\n"
    "reasoning = maths, logic puzzles, proofs, multi-step planning, trade-offs\n"
    "fast = greeting, one short fact, unit conversion, tiny edit\n"
    "balanced = everything else: writing, summaries, explanations, advice\n"
    "(longContext = a very long document; vision = an image.)\n"
    "Reply: fast, balanced, reasoning, code, longContext or vision."
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


# Text rules look at the latest user turn only (the ask that decides the category), and
# only at its start: a rule must stay cheap on a long request.
_TEXT_RULE_SCAN_CHARS: Final = 4000
_CODE_RE: Final = re.compile(
    r"```"  # a fenced block: markdown's way of saying "this is code"
    r"|Traceback \(most recent call last\)"  # Python
    r"|^\s+at [\w$.<>]+\([\w$.]*\.(?:java|kt|scala|js|ts):\d+"  # JVM / Node stack frames
    r"|^\s*(?:def|func|fn)\s+\w+\s*[(<\[]"  # a function definition
    r"|^\s*(?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+TABLE)\s.*"
    r"\b(?:FROM|VALUES|SET|WHERE|\()",  # SQL statements (upper case, as written in code)
    re.MULTILINE,
)
_REASONING_RE: Final = re.compile(
    r"\bprove\s+(?:that|it|this)\b"
    r"|\bshow\s+(?:your|the|all)\s+(?:reasoning|working|work|calculations?|arithmetic)\b"
    r"|\breason\s+(?:carefully|it\s+through|through\s+it)\b|\bwork\s+it\s+out\b",
    re.IGNORECASE,
)
# A bare greeting, thanks or ping: every word from this list but at most one (a name).
_GREETING_WORDS: Final = frozenset(
    (  # noqa: SIM905 -- a word list reads better as text
        "hi hello hey heya hiya yo morning good afternoon evening night thanks thank you thx "
        "ty ok okay cool great nice perfect awesome bye goodbye cheers there are so much lot "
        "again all everyone"
    ).split()
)
_GREETING_MAX_WORDS: Final = 6


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for msg in reversed(messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                return _text_of(msg.get("content"))[:_TEXT_RULE_SCAN_CHARS]
    return ""


def _is_greeting(text: str) -> bool:
    words = _WORD_RE.findall(text.lower())
    if not words or len(words) > _GREETING_MAX_WORDS:
        return False
    unknown = sum(w not in _GREETING_WORDS for w in words)
    return unknown == 0 or (unknown == 1 and len(words) >= 2)


def text_rule_category(body: Mapping[str, Any]) -> Category | None:
    """The category the text rules assign to the latest user turn, or None.

    Only cases a reader would not argue about: code pasted in a fence or a stack trace,
    a request that asks outright for a proof or to see the working, a bare greeting.
    Everything else is the classifier's call.
    """
    text = _last_user_text(body.get("messages"))
    if not text:
        return None
    if _CODE_RE.search(text):
        return Category.CODE
    if _REASONING_RE.search(text):
        return Category.REASONING
    if _is_greeting(text):
        return Category.FAST
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
    """The classifier's prompt: the system prompt, worked examples, then a bounded excerpt
    of the request (always the last message).

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


# Constrained output: a JSON object whose one field can only be a category name. Servers
# with grammar-constrained decoding then cannot answer anything else; others may refuse
# the field, so it is opt-in, in the wire form the tenant's server speaks: "json_schema"
# (OpenAI structured outputs, vLLM, llama.cpp's llama-server) or "json_object" with a
# "schema" (llama-cpp-python's server).
_CATEGORY_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": [c.value for c in Category]}},
    "required": ["category"],
    "additionalProperties": False,
}
CONSTRAINED_FORMATS: Final[dict[str, dict[str, Any]]] = {
    "json_schema": {
        "type": "json_schema",
        "json_schema": {"name": "route", "strict": True, "schema": _CATEGORY_SCHEMA},
    },
    "json_object": {"type": "json_object", "schema": _CATEGORY_SCHEMA},
}


def classifier_request_body(
    messages: list[dict[str, Any]], model: str, *, constrained: str | None = None
) -> dict[str, Any]:
    """The chat-completions body a :data:`Classifier` should send (non-streaming, terse);
    ``constrained`` names a :data:`CONSTRAINED_FORMATS` wire form to ask for."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": CLASSIFIER_MAX_TOKENS,
        "stream": False,
    }
    if constrained:
        body["response_format"] = CONSTRAINED_FORMATS[constrained]
    return body


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
    "vision": Category.VISION,
    "image": Category.VISION,
    "visual": Category.VISION,
    "code": Category.CODE,
    "coding": Category.CODE,
    "programming": Category.CODE,
}
# "long" names longContext only as "long context" / "long_context" / "long-context": alone
# it is an ordinary word ("a very long sentence").
_LONG_CONTEXT_RE: Final = re.compile(r"\blong[\s_-]*context\b", re.IGNORECASE)
# A category is read only from the start of the answer: a model that answered the request
# instead ("The above code is ...") names categories by accident further on.
_LEAD_WORDS: Final = 6
# An answer naming this many categories is an echo of the list, not a choice.
_ECHO_CATEGORIES: Final = 3


def _categories_in(text: str) -> list[Category]:
    """Categories named in text, in order ("long context"/"long_context" count as one)."""
    found: list[Category] = []
    for word in _WORD_RE.findall(_LONG_CONTEXT_RE.sub(" longcontext ", text.lower())):
        cat = _SYNONYMS.get(word)
        if cat is not None and cat not in found:
            found.append(cat)
    return found


def parse_category(answer: str) -> Category | None:
    """Read a category from the classifier's answer; None when it is garbage.

    Accepts a bare word in any case, punctuation or markdown, synonyms ("long context",
    "long_context", "coding"), a JSON object with a "category" key, a leading
    ``<think>`` block and a lead-in ("Category: code", "The category is reasoning").
    Only the answer's first line and first few words count: small models often answer
    the request instead, and their prose names categories by accident. An answer naming
    several is a hedge (garbage) unless it starts with one; naming three or more echoes
    the list.
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
    if len(_categories_in(text)) >= _ECHO_CATEGORIES:
        return None
    first_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    lead = " ".join(_LONG_CONTEXT_RE.sub("longcontext", first_line).split()[:_LEAD_WORDS])
    found = _categories_in(lead)
    if len(found) == 1:
        return found[0]
    # Several: a choice only if the answer starts with it ("code, maybe reasoning"), else
    # a hedge ("it could be reasoning or code") -- garbage, so the balanced model serves.
    first = _WORD_RE.search(lead.lower())
    if found and first is not None and _SYNONYMS.get(first.group(0)) is found[0]:
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
    text_rules: bool = True,
) -> Decision:
    """Choose the category and model for an auto-routed request.

    Never raises for a classifier failure: a timeout, an error or an unreadable answer
    all mean "balanced", so auto-routing degrades to the tenant's general model rather
    than failing the request. A category without a model in the table serves the
    default model.
    """
    ruled = rule_category(body, long_context_tokens)
    if ruled is None and text_rules:
        ruled = text_rule_category(body)
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
