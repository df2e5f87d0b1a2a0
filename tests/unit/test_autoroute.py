"""Unit tests for the auto-router's decision logic (no network: the classifier is a fake)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm_router.autoroute import (
    CLASSIFIER_SYSTEM_PROMPT,
    CONSTRAINED_FORMATS,
    DEFAULT_LONG_CONTEXT_TOKENS,
    Decision,
    classifier_messages,
    classifier_request_body,
    decide,
    estimate_tokens,
    parse_category,
    rule_category,
    text_rule_category,
    wants_auto,
)
from byollm_router.contract import Category, RoutingTable

FULL = RoutingTable(
    auto=True,
    models={
        Category.FAST: "m-fast",
        Category.BALANCED: "m-balanced",
        Category.REASONING: "m-reasoning",
        Category.LONG_CONTEXT: "m-long",
        Category.VISION: "m-vision",
        Category.CODE: "m-code",
    },
)
DEFAULT = "m-default"


class FakeClassifier:
    """Records calls and answers with a fixed text (or raises / sleeps)."""

    def __init__(
        self, answer: str = "code", exc: BaseException | None = None, delay: float = 0
    ) -> None:
        self.answer = answer
        self.exc = exc
        self.delay = delay
        self.calls: list[tuple[list[dict[str, Any]], str, float]] = []

    async def __call__(self, messages: list[dict[str, Any]], model: str, timeout: float) -> str:
        self.calls.append((messages, model, timeout))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.exc is not None:
            raise self.exc
        return self.answer


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def body(*messages: dict[str, Any], model: str | None = "auto") -> dict[str, Any]:
    out: dict[str, Any] = {"messages": list(messages)}
    if model is not None:
        out["model"] = model
    return out


# --- wants_auto ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "auto", "expected"),
    [
        ("auto", False, True),
        ("auto", True, True),
        (None, True, True),
        (None, False, False),
        ("", True, True),
        ("gpt-4o", True, False),
        ("Auto", True, False),
    ],
)
def test_wants_auto(model: str | None, auto: bool, expected: bool) -> None:
    assert wants_auto(body(user("hi"), model=model), RoutingTable(auto=auto)) is expected


# --- rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "input_image", "image_url": "https://example.invalid/x.png"},
        {"type": "image", "source": {"data": "AAAA"}},
    ],
)
async def test_image_part_routes_to_vision_without_classifier(part: dict[str, Any]) -> None:
    clf = FakeClassifier()
    req = body(user([{"type": "text", "text": "what is in this picture?"}, part]))
    d = await decide(req, FULL, DEFAULT, clf, 1.0)
    assert d == Decision(Category.VISION, "m-vision", "rule:vision")
    assert clf.calls == []


async def test_long_input_routes_to_long_context_without_classifier() -> None:
    clf = FakeClassifier()
    text = "x" * (DEFAULT_LONG_CONTEXT_TOKENS * 4 + 4)
    d = await decide(body(user(text)), FULL, DEFAULT, clf, 1.0)
    assert d == Decision(Category.LONG_CONTEXT, "m-long", "rule:longContext")
    assert clf.calls == []


async def test_long_threshold_counts_all_messages_and_is_configurable() -> None:
    clf = FakeClassifier("fast")
    req = body(
        {"role": "system", "content": "s" * 200},
        user([{"type": "text", "text": "t" * 200}]),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "a" * 200}}],
        },
        {"role": "tool", "tool_call_id": "1", "content": "r" * 200},
    )
    assert estimate_tokens(req["messages"]) == 200
    d = await decide(req, FULL, DEFAULT, clf, 1.0, long_context_tokens=199)
    assert d.reason == "rule:longContext"
    d = await decide(req, FULL, DEFAULT, clf, 1.0, long_context_tokens=200)
    assert d.reason == "classifier"


def test_vision_wins_over_length() -> None:
    req = body(user([{"type": "text", "text": "x" * 10**6}, {"type": "image_url"}]))
    assert rule_category(req) is Category.VISION


@pytest.mark.parametrize(
    "req",
    [
        {},
        {"messages": None},
        {"messages": "hello"},
        {"messages": [None, 3, {"content": 7}, {"content": [1, None, "raw"]}]},
    ],
)
def test_rules_tolerate_malformed_bodies(req: dict[str, Any]) -> None:
    assert rule_category(req) is None


# --- classifier path ----------------------------------------------------------------


async def test_classifier_uses_fast_model_and_its_answer() -> None:
    clf = FakeClassifier("code")
    d = await decide(body(user("fix my python")), FULL, DEFAULT, clf, 0.5)
    assert d == Decision(Category.CODE, "m-code", "classifier")
    [(messages, model, timeout)] = clf.calls
    assert model == "m-fast"
    assert timeout == 0.5
    assert messages[0] == {"role": "system", "content": CLASSIFIER_SYSTEM_PROMPT}
    assert "fix my python" in messages[1]["content"]


async def test_classifier_falls_back_to_default_model_without_fast() -> None:
    clf = FakeClassifier("reasoning")
    table = RoutingTable(models={Category.BALANCED: "m-balanced"})
    d = await decide(body(user("is this argument sound?")), table, DEFAULT, clf, 1.0)
    assert clf.calls[0][1] == DEFAULT
    # reasoning has no model in the table -> the default model
    assert d == Decision(Category.REASONING, DEFAULT, "classifier")


async def test_missing_category_model_for_rules_uses_default() -> None:
    d = await decide(
        body(user([{"type": "image_url"}])), RoutingTable(), DEFAULT, FakeClassifier(), 1.0
    )
    assert d == Decision(Category.VISION, DEFAULT, "rule:vision")


async def test_timeout_is_balanced() -> None:
    clf = FakeClassifier("code", delay=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    d = await decide(body(user("tell me about the build")), FULL, DEFAULT, clf, 0.05)
    assert loop.time() - start < 1
    assert d == Decision(Category.BALANCED, "m-balanced", "classifier:timeout")


async def test_httpx_timeout_is_timeout() -> None:
    clf = FakeClassifier(exc=httpx.ReadTimeout("slow"))
    d = await decide(body(user("tell me about the build")), FULL, DEFAULT, clf, 1.0)
    assert d == Decision(Category.BALANCED, "m-balanced", "classifier:timeout")


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom"), httpx.ConnectError("refused"), ValueError("bad json")]
)
async def test_error_is_balanced(exc: Exception) -> None:
    d = await decide(
        body(user("tell me about the build")), FULL, DEFAULT, FakeClassifier(exc=exc), 1.0
    )
    assert d == Decision(Category.BALANCED, "m-balanced", "classifier:error")


async def test_cancellation_propagates() -> None:
    task = asyncio.create_task(
        decide(body(user("tell me about the build")), FULL, DEFAULT, FakeClassifier(delay=5), 10.0)
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("answer", ["banana", "", "   ", "I cannot help with that.", "42"])
async def test_garbage_is_balanced(answer: str) -> None:
    d = await decide(
        body(user("tell me about the build")), FULL, DEFAULT, FakeClassifier(answer), 1.0
    )
    assert d == Decision(Category.BALANCED, "m-balanced", "classifier:garbage")


async def test_classifier_path_default_model_when_balanced_missing() -> None:
    d = await decide(
        body(user("tell me about the build")), RoutingTable(), DEFAULT, FakeClassifier("zzz"), 1.0
    )
    assert d == Decision(Category.BALANCED, DEFAULT, "classifier:garbage")


# --- answer parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("code", Category.CODE),
        ("CODE", Category.CODE),
        ("Code.", Category.CODE),
        ('"reasoning"', Category.REASONING),
        ("**vision**", Category.VISION),
        (" fast\n", Category.FAST),
        ("Balanced!", Category.BALANCED),
        ("longContext", Category.LONG_CONTEXT),
        ("long context", Category.LONG_CONTEXT),
        ("long_context", Category.LONG_CONTEXT),
        ("Long-Context", Category.LONG_CONTEXT),
        ("LONGCONTEXT", Category.LONG_CONTEXT),
        ("coding", Category.CODE),
        ("Category: code", Category.CODE),
        ('{"category": "code"}', Category.CODE),
        ('```json\n{"category": "long_context"}\n```', Category.LONG_CONTEXT),
        ('{"label": "Vision"}', Category.VISION),
        ("<think>is it code or reasoning?</think>reasoning", Category.REASONING),
        ("code, maybe reasoning", Category.CODE),
        ("banana", None),
        ("", None),
        ('{"category": "banana"}', None),
        ('{"category": 3}', None),
        ("it could be reasoning or code", None),
        ("<think>code code code", None),
        # Messy answers from a small model that answered the request instead.
        ("The user's request is a very long sentence.", None),  # "long" alone is no category
        ("The answer is:\n(1) the code is fine", None),  # only the first line counts
        ("Here is my answer to your question, which involves writing some code", None),
        ("fast - short; balanced - general; code - programming", None),  # the list echoed
        ("The category is: reasoning.", Category.REASONING),
        ("  **Long context**\nbecause the input is huge", Category.LONG_CONTEXT),
        ('{ "category" : "fast"}', Category.FAST),  # constrained output, llama.cpp spacing
    ],
)
def test_parse_category(answer: str, expected: Category | None) -> None:
    assert parse_category(answer) is expected


# --- classifier prompt --------------------------------------------------------------


def test_classifier_prompt_is_bounded_and_keeps_last_user_turns() -> None:
    big = "A" * 50_000 + "TAILMARK"
    req = body(
        {"role": "system", "content": "SYSTEMSECRET " * 100},
        user("FIRSTTURN"),
        {"role": "assistant", "content": "ANSWER"},
        user("SECONDTURN"),
        {"role": "assistant", "content": "ANSWER"},
        user([{"type": "text", "text": big}]),
    )
    msgs = classifier_messages(req)
    assert len(msgs) == 2
    content = msgs[1]["content"]
    assert len(content) < 3200
    assert "SECONDTURN" in content
    assert "TAILMARK" in content
    assert "FIRSTTURN" not in content
    assert "SYSTEMSECRET" not in content
    assert "ANSWER" not in content


def test_classifier_prompt_without_user_turn_uses_last_message() -> None:
    msgs = classifier_messages(body({"role": "system", "content": "only a system prompt"}))
    assert "only a system prompt" in msgs[1]["content"]


def test_classifier_request_body_is_terse() -> None:
    b = classifier_request_body([{"role": "user", "content": "x"}], "m-fast")
    assert b["model"] == "m-fast"
    assert b["stream"] is False
    assert b["max_tokens"] <= 16  # the parser reads the first words only
    assert "response_format" not in b  # constrained output is opt-in


@pytest.mark.parametrize("form", sorted(CONSTRAINED_FORMATS))
def test_constrained_output_allows_only_category_names(form: str) -> None:
    b = classifier_request_body([{"role": "user", "content": "x"}], "m", constrained=form)
    fmt = b["response_format"]
    schema = fmt["json_schema"]["schema"] if form == "json_schema" else fmt["schema"]
    assert fmt["type"] == form
    assert schema["required"] == ["category"]
    assert schema["properties"]["category"]["enum"] == [c.value for c in Category]
    # What such a server answers parses back to the category.
    for c in Category:
        assert parse_category(f'{{"category": "{c.value}"}}') is c


# --- text rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Why does this fail?\n```python\nprint(x\n```", Category.CODE),
        ('Traceback (most recent call last):\n  File "a.py", line 1', Category.CODE),
        ("NPE:\n    at com.acme.Api.get(Api.java:42)", Category.CODE),
        ("def merge(a, b):\n    return a + b\nwhat's wrong?", Category.CODE),
        ("SELECT id FROM orders WHERE total > 10 -- slow, why?", Category.CODE),
        ("Prove that the square root of 2 is irrational.", Category.REASONING),
        ("How long does the trip take? Show your working.", Category.REASONING),
        ("Is the deal worth it? Reason it through.", Category.REASONING),
        ("hi", Category.FAST),
        ("hey ada, good morning!", Category.FAST),
        ("ok thanks!", Category.FAST),
        ("are you there?", Category.FAST),
        # Not unambiguous: the classifier decides.
        ("hello, can you help me plan the offsite?", None),
        ("write a SQL query for monthly revenue", None),
        ("select the best option for our team", None),
        ("Explain step by step how to bake bread", None),
        ("thanks, now summarise the thread", None),
        ("", None),
    ],
)
def test_text_rules_catch_only_unambiguous_requests(text: str, expected: Category | None) -> None:
    assert text_rule_category(body(user(text))) is expected


def test_text_rules_read_the_latest_user_turn_only() -> None:
    history = body(
        user("```py\nx = 1\n```"),
        {"role": "assistant", "content": "Looks fine."},
        user("thanks, and what should I name the file?"),
    )
    assert text_rule_category(history) is None
    assert text_rule_category(body({"role": "system", "content": "```sh\nls\n```"})) is None
    assert text_rule_category(body(user([{"type": "text", "text": "hello!"}]))) is Category.FAST


async def test_text_rules_decide_without_a_classifier_call() -> None:
    clf = FakeClassifier("balanced")
    d = await decide(body(user("prove that 7 is prime")), FULL, DEFAULT, clf, 1.0)
    assert d == Decision(Category.REASONING, "m-reasoning", "rule:reasoning")
    assert clf.calls == []
    # Switched off, the same request goes to the classifier.
    d = await decide(body(user("prove that 7 is prime")), FULL, DEFAULT, clf, 1.0, text_rules=False)
    assert d == Decision(Category.BALANCED, "m-balanced", "classifier")
    assert len(clf.calls) == 1


def test_text_rules_stay_cheap_on_a_huge_turn() -> None:
    # The scan is bounded: a fence after the first few thousand characters is not seen.
    late = "word " * 2000 + "```py\nx\n```"
    assert text_rule_category(body(user(late))) is None


# --- properties: nothing a caller sends can make the auto-router raise ----------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_image", "audio"]), "text": _json}
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "tool", 3]),
        "content": st.none() | st.text(max_size=200) | st.lists(_part | _json, max_size=4),
    }
)
_body: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(_message | _json, max_size=6)}),
    st.dictionaries(st.sampled_from(["messages", "model", "x"]), _json, max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(body=_body)
def test_rules_and_prompt_never_raise_and_stay_bounded(body: dict[str, Any]) -> None:
    assert rule_category(body) in (None, *Category)
    msgs = classifier_messages(body)
    assert len(msgs[1]["content"]) < 3200


@settings(max_examples=150, deadline=None)
@given(answer=st.text(max_size=400))
def test_parse_category_never_raises(answer: str) -> None:
    assert parse_category(answer) in (None, *Category)


async def test_without_default_model_balanced_stands_in() -> None:
    """Managed mode has no LLM_MODEL: a category without a model uses the balanced one."""
    table = RoutingTable(models={Category.BALANCED: "m-balanced", Category.CODE: "m-code"})
    clf = FakeClassifier("reasoning")
    d = await decide(body(user("is this argument sound?")), table, "", clf, 1.0)
    assert clf.calls[0][1] == "m-balanced"
    assert d == Decision(Category.REASONING, "m-balanced", "classifier")
    d = await decide(body(user("x")), RoutingTable(), "", FakeClassifier("code"), 1.0)
    assert d == Decision(Category.CODE, "", "classifier")
