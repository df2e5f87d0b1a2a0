"""Static checks on deploy/ files that CI cannot build (no Docker engine here)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"


# What each image installs: the router image holds the router distribution only.
IMAGE_PACKAGES = {"router": ["router"], "operator": ["router", "sdk", "operator"]}


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
    copied = re.findall(r"^COPY (\S+) \./\1$", text, re.M)
    assert copied == IMAGE_PACKAGES[image]
    ignore = (DOCKER / f"{image}.Dockerfile.dockerignore").read_text()
    assert re.findall(r"^!(\S+)/\*\*$", ignore, re.M) == IMAGE_PACKAGES[image]


def _names(deps: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; @]", d, maxsplit=1)[0].lower() for d in deps}


def test_router_distribution_has_no_kubernetes_client_kopf_or_operator_code() -> None:
    project = tomllib.loads((ROOT / "router" / "pyproject.toml").read_text())
    meta = project["project"]
    deps = meta["dependencies"] + meta["optional-dependencies"]["server"]
    assert not _names(deps) & {"kopf", "kubernetes", "pydantic-settings", "cryptography"}
    assert not _names(deps) & {"byollm-sdk", "byollm-operator", "byollm-devtools"}
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["byollm_router"]
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert root["dependencies"] == []
    assert _names(root["optional-dependencies"]["router"]) == {"byollm-router"}


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


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        # the router: nothing of the operator, the SDK or a Kubernetes client
        (
            "byollm_router.main, byollm_router.app, byollm_router.providers",
            ("kopf", "kubernetes", "byollm", "byollm_operator", "byollm_dev"),
        ),
        # the SDK and CLI: usable by a portal without the operator framework
        ("byollm, byollm.client, byollm.cli, byollm.api", ("kopf", "byollm_operator")),
    ],
    ids=["router", "sdk"],
)
def test_imports_stay_within_their_audience(modules: str, forbidden: tuple[str, ...]) -> None:
    import subprocess
    import sys

    code = (
        f"import sys, {modules}; "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
