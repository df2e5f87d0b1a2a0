"""Switches under live traffic, key rotation, Managed revert and in-flight streams on real
pods: the rollout guarantees (readiness, maxUnavailable 0, preStop, graceful shutdown)."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import realnode_helpers as h
from operator_helpers import llmc_path, patch_spec, wait_for

from byollm.kube import path
from byollm_router import contract

# A bounded client loop (the official SDK, no retries): requests without pause, one JSON
# line per answer, until the stop file appears or the time bound is reached.
LOOP = """
    import json, os, sys, time, openai
    client = openai.OpenAI(base_url={url!r}, api_key={token!r}, max_retries=0, timeout=20)
    deadline = time.time() + {max_s}
    n = 0
    while time.time() < deadline and not os.path.exists({stop!r}) and n < {max_n}:
        n += 1
        t = time.time()
        try:
            r = client.chat.completions.create(
                model="", messages=[{{"role": "user", "content": "hi"}}])
            row = {{"t": t, "ok": True, "fp": r.system_fingerprint, "model": r.model}}
        except Exception as e:
            row = {{"t": t, "ok": False, "err": f"{{type(e).__name__}}: {{e}}"[:300]}}
        row["done"] = time.time()
        print(json.dumps(row), flush=True)
"""


class Loop:
    """The client loop running in the agent pod's network namespace."""

    def __init__(self, platform: Any, ns: str, tmp: Path, agent_pid: int) -> None:
        self.out = tmp / "loop.jsonl"
        self.stop_file = tmp / "stop"
        code = LOOP.format(
            url=platform.router_url(ns),
            token=platform.token(ns),
            stop=str(self.stop_file),
            max_s=600,
            max_n=200_000,
        )
        self.proc: subprocess.Popen[bytes] = h.popen_in_netns(agent_pid, code, self.out)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for line in self.out.read_text().splitlines():
            if line.startswith("{") and line.endswith("}"):  # the last one may be partial
                rows.append(json.loads(line))
        return rows

    def first_answer_from(self, since: float, fp: str, model: str, timeout: float = 60) -> float:
        """Seconds from ``since`` to the first answer sent after it by (fp, model)."""

        def seen() -> float | None:
            assert self.proc.poll() is None, self.out.read_text()[-2000:]
            for r in self.rows():
                if r["t"] >= since and r.get("fp") == fp and r.get("model") == model:
                    return float(r["done"]) - since
            return None

        got: float = wait_for(f"first answer from {fp}/{model}", seen, timeout, 0.05)
        return got

    def finish(self) -> list[dict[str, Any]]:
        self.stop_file.touch()
        self.proc.wait(30)
        return self.rows()


def _failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r["ok"]]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_switch_under_live_traffic(platform, tmp_path: Path) -> None:
    """A client loop without pause while the tenant switches model, provider, active false
    (Managed), back, and mode: 12 switches, zero failed requests, and the time from each
    patch to the first answer from the new upstream."""
    ns = platform.byo_tenant(stub="stub-a", model="m-1")
    platform.ready_router_pod(ns)
    agent = platform.client_pod(ns)
    loop = Loop(platform, ns, tmp_path, agent)
    wait_for("loop answers", lambda: len(loop.rows()) > 5, 30)
    steps: list[tuple[str, dict[str, Any], tuple[str, str]]] = [
        ("model", {"provider": {"defaultModel": "m-2"}}, ("fp_stub-a", "m-2")),
        ("provider", platform.byo_spec("stub-b", "m-3", "key-stub-b"), ("fp_stub-b", "m-3")),
        ("active false", {"active": False}, ("fp_litellm", "platform-model")),
        ("active true", {"active": True}, ("fp_stub-b", "m-3")),
        ("provider", platform.byo_spec("stub-a", "m-4", "key-stub-a"), ("fp_stub-a", "m-4")),
        ("mode Managed", {"mode": "Managed"}, ("fp_litellm", "platform-model")),
        ("mode BYO", {"mode": "BYO"}, ("fp_stub-a", "m-4")),
        ("model", {"provider": {"defaultModel": "m-5"}}, ("fp_stub-a", "m-5")),
        ("provider", platform.byo_spec("stub-b", "m-6", "key-stub-b"), ("fp_stub-b", "m-6")),
        ("active false", {"active": False}, ("fp_litellm", "platform-model")),
        ("active true", {"active": True}, ("fp_stub-b", "m-6")),
        ("model", {"provider": {"defaultModel": "m-7"}}, ("fp_stub-b", "m-7")),
    ]
    latencies: list[float] = []
    try:
        for what, spec_patch, (fp, model) in steps:
            t = time.time()
            patch_spec(platform.kube, ns, "acme", spec_patch)
            latencies.append(loop.first_answer_from(t, fp, model))
            # Let the rollout finish (old pod gone) before the next switch.
            wait_for(
                f"rollout after {what}",
                lambda: (
                    len(platform.router_pods(ns)) == 1
                    and h.pod_ready(
                        platform.kube, ns, platform.router_pods(ns)[0]["metadata"]["name"]
                    )
                ),
                90,
            )
        time.sleep(8)  # the last old pod's preStop + shutdown, under traffic
    finally:
        rows = loop.finish()
    failed = _failures(rows)
    p50, p99 = statistics.median(latencies), _pct(latencies, 0.99)
    h.report(
        f"realnode: switch under live traffic: {len(steps)} switches, {len(rows)} requests, "
        f"{len(failed)} failed; patch -> first answer from the new upstream "
        f"p50 {p50:.1f}s p99 {p99:.1f}s (max {max(latencies):.1f}s)"
    )
    assert not failed, failed[:5]
    assert len(rows) > 100
    assert p99 <= 30, latencies


def test_managed_revert_wipes_keys_from_running_process(platform) -> None:
    """BYO -> Managed: the four BYO keys are absent from the new router process's
    environment (read from /proc/<pid>/environ on the host) and from the Secret."""
    ns = platform.byo_tenant()
    byo_pod = platform.ready_router_pod(ns)
    env = Path(f"/proc/{platform.pid(byo_pod)}/environ").read_bytes().split(b"\0")
    assert f"{contract.LLM_API_KEY}={h.STUB_KEYS['stub-a']}".encode() in env
    patch_spec(platform.kube, ns, "acme", {"mode": "Managed"})

    def managed_pod() -> dict[str, Any] | None:
        pods = platform.router_pods(ns)
        if len(pods) != 1 or pods[0]["metadata"]["uid"] == byo_pod["metadata"]["uid"]:
            return None
        return pods[0] if h.pod_ready(platform.kube, ns, pods[0]["metadata"]["name"]) else None

    pod = wait_for("Managed router pod", managed_pod, 120)
    environ = Path(f"/proc/{platform.pid(pod)}/environ").read_bytes()
    names = {e.split(b"=", 1)[0].decode() for e in environ.split(b"\0") if e}
    for key in contract.BYO_SECRET_KEYS:
        assert key not in names, key
    assert h.STUB_KEYS["stub-a"].encode() not in environ
    assert names >= {contract.LLM_MODE, contract.BYOLLM_MANAGED_URL}
    secret = platform.kube.get(path("v1", "Secret", ns, "acme-llm")) or {}
    assert not set(secret.get("data") or {}) & set(contract.BYO_SECRET_KEYS)


def test_key_rotation_rolls_pods_without_failed_requests(platform, tmp_path: Path) -> None:
    """A new key in the tenant's source Secret: new pods carry it, the provider sees it,
    and the client loop sees no failed request."""
    ns = platform.tenant()
    new_key = "sk-rotated-" + str(int(time.time()))
    platform.key_secret(ns, "key-any", "sk-old-key-0000")
    from operator_helpers import create_llmc, wait_ready

    spec = platform.byo_spec("stub-any", "m-rot", "key-any")
    create_llmc(platform.kube, ns, "acme", spec)
    wait_ready(platform.kube, ns, "acme", timeout=120)
    old = platform.ready_router_pod(ns)
    agent = platform.client_pod(ns)
    loop = Loop(platform, ns, tmp_path, agent)
    try:
        wait_for("loop answers", lambda: len(loop.rows()) > 5, 30)
        platform.key_secret(ns, "key-any", new_key)

        def rotated() -> dict[str, Any] | None:
            pods = platform.router_pods(ns)
            if len(pods) != 1 or pods[0]["metadata"]["uid"] == old["metadata"]["uid"]:
                return None
            return pods[0] if h.pod_ready(platform.kube, ns, pods[0]["metadata"]["name"]) else None

        pod = wait_for("router rolled to the new key", rotated, 120)
        environ = Path(f"/proc/{platform.pid(pod)}/environ").read_bytes().split(b"\0")
        assert f"{contract.LLM_API_KEY}={new_key}".encode() in environ
        time.sleep(8)
    finally:
        rows = loop.finish()
    assert not _failures(rows), _failures(rows)[:5]
    seen = platform.stub_requests("stub-any")
    keys = [r.get("api_key") for r in seen if r.get("path") == "/v1/chat/completions"]
    assert new_key in keys
    assert "sk-old-key-0000" in keys
    assert keys.index(new_key) > keys.index("sk-old-key-0000")


STREAM = """
    import json, time, openai
    client = openai.OpenAI(base_url={url!r}, api_key={token!r}, max_retries=0, timeout=60)
    t = time.time()
    stream = client.chat.completions.create(
        model="stub-slow", messages=[{{"role": "user", "content": "a long story " * 20}}],
        stream=True)
    n, finish = 0, None
    for c in stream:
        if c.choices:
            n += 1
            finish = c.choices[0].finish_reason or finish
            if n == 5:
                print(json.dumps({{"started": time.time()}}), flush=True)
    print(json.dumps({{"chunks": n, "finish": finish, "seconds": time.time() - t}}), flush=True)
"""


def test_inflight_stream_survives_rollout(platform, tmp_path: Path) -> None:
    """A streaming answer (50 chunks over ~5 s) that is under way when its pod is replaced
    by a rollout finishes complete: the old pod drains before it exits."""
    ns = platform.byo_tenant()
    old = platform.ready_router_pod(ns)
    agent = platform.client_pod(ns)
    out = tmp_path / "stream.jsonl"
    proc = h.popen_in_netns(
        agent, STREAM.format(url=platform.router_url(ns), token=platform.token(ns)), out
    )
    wait_for("stream under way", lambda: "started" in out.read_text(), 30, 0.05)
    patch_spec(platform.kube, ns, "acme", {"provider": {"defaultModel": "m-rolled"}})

    def old_terminating() -> bool:
        pod = platform.kube.get(path("v1", "Pod", ns, old["metadata"]["name"]))
        return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

    wait_for("old pod terminating", old_terminating, 60, 0.1)
    assert proc.wait(90) == 0, out.read_text()
    last = json.loads(out.read_text().strip().splitlines()[-1])
    assert last["chunks"] >= 40, last  # the answer in ~50 pieces, 100 ms apart
    assert last["finish"] == "stop", last
    obj = platform.kube.get(llmc_path(ns, "acme")) or {}
    assert obj["spec"]["provider"]["defaultModel"] == "m-rolled"
