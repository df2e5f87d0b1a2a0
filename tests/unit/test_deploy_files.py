"""Static checks on deploy/ files that CI cannot build (no Docker engine here)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"


@pytest.mark.parametrize("image", ["operator", "router"])
def test_dockerfile_multi_stage_pinned_non_root(image: str) -> None:
    text = (DOCKER / f"{image}.Dockerfile").read_text()
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default_base, "base image must be an ARG with a pinned default"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", default_base[1])
    assert len(re.findall(r"^FROM ", text, re.M)) == 2  # build stage + runtime stage
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user == ["65532:65532"]  # numeric, so runAsNonRoot can verify it
    assert f'ENTRYPOINT ["byollm-{image}"]' in text
    assert f'pip install ".[{image}]"' in text
    assert (DOCKER / f"{image}.Dockerfile.dockerignore").exists()


def test_router_image_has_no_kubernetes_client_or_kopf() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = extras["dependencies"] + extras["optional-dependencies"]["router"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}
    assert not names & {"kopf", "kubernetes", "pydantic-settings", "cryptography"}


def test_kind_script_is_executable_and_says_ci_cannot_run_it() -> None:
    script = ROOT / "deploy" / "kind" / "up.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "NOT run in this project's CI" in text
    for step in (
        "kind create cluster",
        "docker build",
        "kind load docker-image",
        "upgrade --install",
    ):
        assert step in text
