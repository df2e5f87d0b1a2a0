"""Start-up validation of the real ``byollm-router`` process: a bad environment exits
non-zero with ONE line that names the variable, and never prints the key."""

from __future__ import annotations

import subprocess

import pytest
from router_harness import ROUTER_BIN, TOKEN

KEY = "sk-SECRET-startup-key-9a8b7c"
GOOD = {
    "BYOLLM_ROUTER_TOKEN": TOKEN,
    "LLM_PROVIDER": "openai",
    "LLM_BASE_URL": "https://api.openai.com/v1",
    "LLM_API_KEY": KEY,
    "LLM_MODEL": "gpt-4o-mini",
}

CASES: list[tuple[str, dict[str, str | None], str]] = [
    ("no-token", {"BYOLLM_ROUTER_TOKEN": None}, "BYOLLM_ROUTER_TOKEN"),
    ("bad-provider", {"LLM_PROVIDER": "bedrock"}, "LLM_PROVIDER"),
    ("bad-mode", {"LLM_MODE": "Hybrid"}, "LLM_MODE"),
    ("nothing", {k: None for k in GOOD if k != "BYOLLM_ROUTER_TOKEN"}, "LLM_MODE"),
    ("byo-no-key", {"LLM_MODE": "BYO", "LLM_API_KEY": None}, "LLM_API_KEY"),
    ("byo-no-model", {"LLM_MODE": "BYO", "LLM_MODEL": None}, "LLM_MODEL"),
    ("ftp-url", {"LLM_BASE_URL": "ftp://example.com/v1"}, "LLM_BASE_URL"),
    ("metadata-url", {"LLM_BASE_URL": "https://169.254.169.254/v1"}, "LLM_BASE_URL"),
    ("azure-no-url", {"LLM_PROVIDER": "azure", "LLM_BASE_URL": None}, "LLM_BASE_URL"),
    ("routing-json", {"LLM_ROUTING": '{"auto": tru'}, "LLM_ROUTING"),
    ("routing-category", {"LLM_ROUTING": '{"models": {"huge": "m"}}'}, "LLM_ROUTING"),
    ("timeout", {"BYOLLM_UPSTREAM_TIMEOUT": "-1"}, "BYOLLM_UPSTREAM_TIMEOUT"),
    ("max-bytes", {"BYOLLM_MAX_REQUEST_BYTES": "lots"}, "BYOLLM_MAX_REQUEST_BYTES"),
    ("allowlist", {"BYOLLM_UPSTREAM_ALLOWLIST": "not a host!"}, "BYOLLM_UPSTREAM_ALLOWLIST"),
    ("buffered", {"BYOLLM_MAX_BUFFERED_RESPONSE_BYTES": "0"}, "BYOLLM_MAX_BUFFERED_RESPONSE_BYTES"),
    ("head-timeout", {"BYOLLM_CLIENT_HEADER_TIMEOUT": "inf"}, "BYOLLM_CLIENT_HEADER_TIMEOUT"),
    ("body-timeout", {"BYOLLM_CLIENT_BODY_TIMEOUT": "-5"}, "BYOLLM_CLIENT_BODY_TIMEOUT"),
    ("connections", {"BYOLLM_MAX_CONNECTIONS": "many"}, "BYOLLM_MAX_CONNECTIONS"),
    ("azure-dot-model", {"LLM_PROVIDER": "azure", "LLM_MODEL": ".."}, "LLM_MODEL"),
    ("managed-no-url", {"LLM_MODE": "Managed"}, "BYOLLM_MANAGED_URL"),
]


@pytest.mark.parametrize(("changes", "variable"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_exits_with_one_line(changes: dict[str, str | None], variable: str) -> None:
    env = {**GOOD, **changes}
    clean = {k: v for k, v in env.items() if v is not None}
    proc = subprocess.run(
        [str(ROUTER_BIN), "--host", "127.0.0.1", "--port", "1"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert variable in lines[0]
    assert KEY not in lines[0]
    assert TOKEN not in lines[0]
