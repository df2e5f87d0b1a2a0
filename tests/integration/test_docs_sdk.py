"""Every Python example in docs/sdk.md, run in order against the real API server with the
operator running; each ``print(...)  # text`` must print that text (``...`` = any text).

The keys are fake and every provider host resolves to 127.0.0.1 for the operator's
credentials probe (the test operator's settings), so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster

DOC = Path(__file__).parents[2] / "docs" / "sdk.md"
KEYS = {
    "OPENROUTER_API_KEY": "sk-or-v1-docs-example-0123456789abcdef",
    "GROQ_API_KEY": "gsk_docs-example-0123456789abcdef",
}


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def expected_prints(code: str) -> list[re.Pattern[str]]:
    out = []
    for line in code.splitlines():
        m = re.match(r"\s*print\(.*\)\s+# (.*)$", line)
        if m:
            parts = [re.escape(p) for p in m.group(1).split("...")]
            out.append(re.compile(".*".join(parts)))
    return out


def test_docs_have_examples() -> None:
    assert len(blocks()) >= 6
    assert sum(len(expected_prints(b)) for b in blocks()) >= 4


def test_every_sdk_doc_example_runs(
    k8s_api: Any,
    control_plane: Any,
    running_operator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = client.CoreV1Api(k8s_api)
    with contextlib.suppress(client.exceptions.ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="tenant-acme")))
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    scope: dict[str, Any] = {"__name__": "docs_sdk"}
    try:
        for i, code in enumerate(blocks()):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"docs/sdk.md block {i + 1}", "exec"), scope)
            printed = out.getvalue().splitlines()
            print(f"--- block {i + 1}\n{out.getvalue()}")
            want = expected_prints(code)
            assert len(printed) == len(want), (i + 1, printed)
            for line, pattern in zip(printed, want, strict=True):
                assert pattern.fullmatch(line), (i + 1, line, pattern.pattern)
            for key in KEYS.values():
                assert key not in out.getvalue()
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace("tenant-acme")
