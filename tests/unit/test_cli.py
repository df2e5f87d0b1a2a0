"""``byollm`` CLI without a cluster: help everywhere, exit codes, crd, seal from a key file."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from byollm import api, cli, sealing
from byollm.client import LLMConfigView

BYOLLM = str(Path(sys.executable).with_name("byollm"))


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([BYOLLM, *args], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("cmd", [[], ["seal"], ["status"], ["crd"], ["dev"]])
def test_help_everywhere_documents_exit_codes(cmd: list[str]) -> None:
    res = run(*cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert "exit codes:" in res.stdout
    assert "2  usage error" in res.stdout


def test_usage_errors_exit_2() -> None:
    assert run().returncode == cli.EXIT_USAGE
    assert run("nope").returncode == cli.EXIT_USAGE
    res = run("seal", "--name", "x")  # --namespace missing
    assert res.returncode == cli.EXIT_USAGE
    assert "--namespace" in res.stderr
    assert run("status", "-n", "a", "-A").returncode == cli.EXIT_USAGE


def test_crd_prints_the_generated_crd() -> None:
    res = run("crd")
    assert res.returncode == 0
    assert res.stdout == api.crd_yaml()
    assert yaml.safe_load(res.stdout)["metadata"]["name"] == api.CRD_NAME


def test_seal_with_a_public_key_file(tmp_path: Path) -> None:
    private, public = sealing.generate_keypair()
    (tmp_path / "pub.pem").write_bytes(public)
    key = "sk-proj-abcdefghijklmnop"
    seal = ("seal", "-n", "tenant-a", "--name", "acme", "--public-key", str(tmp_path / "pub.pem"))
    res = run(*seal, stdin=key + "\n")
    assert res.returncode == 0, res.stderr
    sealed = res.stdout.strip()
    assert key not in res.stdout + res.stderr
    assert sealing.unseal(sealed, [private], "tenant-a", "acme") == key
    with pytest.raises(sealing.SealError):  # bound to namespace/name
        sealing.unseal(sealed, [private], "tenant-b", "acme")
    res = run(*seal, "--yaml", stdin=key)
    assert yaml.safe_load(res.stdout)["apiKey"]["sealed"].startswith("v1.")


def test_seal_errors_exit_1(tmp_path: Path) -> None:
    _, public = sealing.generate_keypair()
    (tmp_path / "pub.pem").write_bytes(public)
    pub = str(tmp_path / "pub.pem")
    res = run("seal", "-n", "t", "--name", "a", "--public-key", pub, stdin="")
    assert res.returncode == cli.EXIT_ERROR
    assert "no key on stdin" in res.stderr
    res = run("seal", "-n", "Bad_NS", "--name", "a", "--public-key", pub, stdin="k")
    assert res.returncode == cli.EXIT_ERROR
    res = run(
        "seal", "-n", "t", "--name", "a", "--public-key", str(tmp_path / "missing"), stdin="k"
    )
    assert res.returncode == cli.EXIT_ERROR
    assert "cannot read" in res.stderr


def test_status_without_a_cluster_exits_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    res = run("status", "-A", "--kubeconfig", str(kubeconfig))
    assert res.returncode == cli.EXIT_ERROR
    assert res.stderr.startswith("byollm: status: cannot reach the API server")


T = "2026-01-01T00:00:00Z"


def test_status_table_rendering() -> None:
    obj = {
        "metadata": {"name": "acme", "namespace": "t", "generation": 2},
        "spec": {
            "mode": "BYO",
            "active": False,
            "provider": {
                "type": "openai",
                "defaultModel": "gpt-4o-mini",
                "apiKey": {"secretKeyRef": {"name": "acme-key"}},
            },
        },
        "status": {
            "observedGeneration": 2,
            "mode": "Managed",
            "apiKeyPrefix": "sk-proj-",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Reconciled",
                    "lastTransitionTime": T,
                },
                {
                    "type": "CredentialsValid",
                    "status": "False",
                    "reason": "Unauthorized",
                    "lastTransitionTime": T,
                },
            ],
        },
    }
    # Toggled off: the configured provider, model and key prefix stay visible.
    rows = cli._status_rows([LLMConfigView.from_object(obj)], wide=False)
    assert rows == [
        [
            "t",
            "acme",
            "BYO (inactive)",
            "Managed",
            "openai",
            "gpt-4o-mini",
            "sk-proj-",
            "True",
            "Reconciled",
            "CredentialsValid=False",
        ]
    ]
    out = io.StringIO()
    out.write(cli._table(["A", "B"], [["x", "yy"]]))
    assert out.getvalue() == "A  B\nx  yy\n"
