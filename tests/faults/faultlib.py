"""What the fault suite measures: a fleet of LLMConfigs, a change to each during the fault,
convergence per object after recovery, the API server's audit log (every write the
operator made) and a watch on the router Secrets (no half-written Secret ever stored).
"""

from __future__ import annotations

import base64
import json
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from byollm import api
from byollm.kube import Kube, KubeError, path
from byollm_router import contract
from byollm_router.contract import LLM_KEY_LABEL

OPERATOR_USER = "byollm-operator"
CHANGES = ("model", "key", "active")
MODEL_A = "qwen/qwen3-30b-a3b-instruct"
MODEL_B = "openai/gpt-4o-mini"


@dataclass
class Sizes:
    """How big a fault run is (from the environment, see conftest.py)."""

    n: int
    outage: float
    window: float
    full: bool


def key_for(i: int, version: int) -> str:
    return f"sk-fault-{version}-{i:03d}-0123456789abcdef"


def byo_spec(i: int) -> dict[str, Any]:
    return {
        "mode": "BYO",
        "provider": {
            "type": "openrouter",
            "defaultModel": MODEL_A,
            "apiKey": {"secretKeyRef": {"name": f"key-{i:03d}", "key": "apiKey"}},
        },
        "access": {"podSelector": {"matchLabels": {"app": "agent"}}},
    }


def put_key(kube: Kube, ns: str, i: int, version: int) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"key-{i:03d}",
            "namespace": ns,
            "labels": {LLM_KEY_LABEL: "true"},
        },
        "data": {"apiKey": base64.b64encode(key_for(i, version).encode()).decode()},
    }
    kube.request(
        "PATCH",
        path("v1", "Secret", ns, f"key-{i:03d}"),
        body=body,
        query=[("fieldManager", "tenant"), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )


@dataclass
class Fleet:
    """N LLMConfigs ``f000``.. in one namespace; object i gets change CHANGES[i % 3]."""

    kube: Kube
    ns: str
    n: int
    changed: dict[str, str] = field(default_factory=dict)  # name -> change made

    def name(self, i: int) -> str:
        return f"f{i:03d}"

    def create(self) -> None:
        for i in range(self.n):
            put_key(self.kube, self.ns, i, 1)
            self.kube.request(
                "POST",
                path(api.API_VERSION, api.KIND, self.ns),
                body={
                    "apiVersion": api.API_VERSION,
                    "kind": api.KIND,
                    "metadata": {"name": self.name(i)},
                    "spec": byo_spec(i),
                },
            )

    def change(self, i: int, retry_until: float = 0.0) -> None:
        """Make object i's change; with ``retry_until``, retry a refused or unanswered
        request until then (a client during an outage)."""
        what = CHANGES[i % len(CHANGES)]
        while True:
            try:
                if what == "key":
                    put_key(self.kube, self.ns, i, 2)
                else:
                    spec = (
                        {"provider": {"defaultModel": MODEL_B}}
                        if what == "model"
                        else {"active": False}
                    )
                    self.kube.merge_patch(
                        path(api.API_VERSION, api.KIND, self.ns, self.name(i)), {"spec": spec}
                    )
                break
            except (KubeError, OSError, httpx.HTTPError, Exception):
                if time.monotonic() > retry_until:
                    raise
                time.sleep(0.5)
        self.changed[self.name(i)] = what

    def change_all(self, retry_until: float = 0.0) -> None:
        for i in range(self.n):
            self.change(i, retry_until)

    def expected(self, i: int) -> tuple[str, str | None, str | None]:
        """(mode, model, key) the router Secret must end with."""
        what = self.changed.get(self.name(i))
        if what == "active":
            return "Managed", None, None
        return (
            "BYO",
            MODEL_B if what == "model" else MODEL_A,
            key_for(i, 2 if what == "key" else 1),
        )

    def secret_final(self, i: int) -> bool:
        """Object i's router Secret already holds its final config."""
        sec = self.kube.get(path("v1", "Secret", self.ns, f"{self.name(i)}-llm")) or {}
        env = _decode(sec)
        _, model, key = self.expected(i)
        return env.get(contract.LLM_MODEL) == model and env.get(contract.LLM_API_KEY) == key

    def converged(self, applied_only: bool = False) -> set[str]:
        """Names whose status, router Secret and Deployment all show the final state (the
        router rolled and Ready); ``applied_only``: the operator's part is done (Secret,
        Deployment template and status written; the rollout itself may still run)."""
        items = {
            o["metadata"]["name"]: o
            for o in self.kube.list(path(api.API_VERSION, api.KIND, self.ns))
        }
        secrets = {
            s["metadata"]["name"]: s
            for s in self.kube.list(
                f"/api/v1/namespaces/{self.ns}/secrets?labelSelector="
                "app.kubernetes.io%2Fmanaged-by%3Dbyollm-operator"
            )
        }
        deps = {
            d["metadata"]["name"]: d
            for d in self.kube.list(f"/apis/apps/v1/namespaces/{self.ns}/deployments")
        }
        done = set()
        for i in range(self.n):
            name = self.name(i)
            obj, sec = items.get(name), secrets.get(f"{name}-llm")
            dep = deps.get(f"{name}-router")
            if obj is None or sec is None or dep is None:
                continue
            st = obj.get("status") or {}
            ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
            if st.get("observedGeneration") != obj["metadata"]["generation"]:
                continue
            if st.get("mode") != self.expected(i)[0]:
                continue
            if not applied_only and ready.get("status") != "True":
                continue
            env = _decode(sec)
            _mode, model, key = self.expected(i)
            if env.get(contract.LLM_MODEL) != model or env.get(contract.LLM_API_KEY) != key:
                continue
            tmpl = dep["spec"]["template"]["metadata"].get("annotations") or {}
            if tmpl.get("byollm.io/config-hash") != st.get("configHash"):
                continue
            if applied_only:
                done.add(name)
                continue
            ds = dep.get("status") or {}
            want = dep["spec"].get("replicas", 1)
            if ds.get("observedGeneration") != dep["metadata"]["generation"]:
                continue
            if ds.get("updatedReplicas") != want or ds.get("availableReplicas") != want:
                continue
            if ds.get("replicas") != want:
                continue
            done.add(name)
        return done

    def wait_converged(
        self, since: float, timeout: float, applied: dict[str, float] | None = None
    ) -> dict[str, float]:
        """Seconds from ``since`` (monotonic) until each object first showed its final
        state (and, into ``applied``, its operator part done); fails listing the laggards
        after ``timeout``."""
        first: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(first) < self.n:
            try:
                if applied is not None and len(applied) < self.n:
                    now = time.monotonic()
                    for name in self.converged(applied_only=True):
                        applied.setdefault(name, now - since)
                now_done = self.converged()
            except KubeError:
                now_done = set()
            now = time.monotonic()
            for name in now_done:
                first.setdefault(name, now - since)
                if applied is not None:
                    applied.setdefault(name, now - since)
            if len(first) == self.n:
                break
            if now > deadline:
                missing = sorted({self.name(i) for i in range(self.n)} - set(first))
                raise AssertionError(f"not converged after {timeout:.0f}s: {missing}")
            time.sleep(0.2)
        return first


def _decode(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 99)


# --- audit log ---------------------------------------------------------------------------


@dataclass
class Audit:
    """The API server's audit log (JSON lines), read from a byte offset on."""

    log: Path
    offset: int = 0

    def mark(self) -> None:
        self.offset = self.log.stat().st_size if self.log.exists() else 0

    def events(self) -> list[dict[str, Any]]:
        out = []
        with self.log.open("rb") as f:
            f.seek(self.offset)
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a kill of the API server
        return out

    def operator_writes(self, ns: str, cut_off: bool = False) -> list[dict[str, Any]]:
        """Completed writes by the operator in ``ns`` that the server accepted (2xx), dry
        runs excluded. ``cut_off``: instead, the writes whose client went away before the
        answer (the API server logs 504): a killed operator's request in flight, which
        may or may not have been committed."""
        writes = []
        for e in self.events():
            if e.get("stage") != "ResponseComplete":
                continue
            if (e.get("user") or {}).get("username") != OPERATOR_USER:
                continue
            if e.get("verb") not in ("create", "update", "patch", "delete"):
                continue
            ref = e.get("objectRef") or {}
            if ref.get("namespace") != ns or "dryRun=" in e.get("requestURI", ""):
                continue
            code = int((e.get("responseStatus") or {}).get("code", 0))
            if (code == 504) if cut_off else not 200 <= code < 300:
                continue
            writes.append(e)
        return writes


def child_writes(writes: list[dict[str, Any]], resource: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in writes
        if (e.get("objectRef") or {}).get("resource") == resource
        and (e.get("objectRef") or {}).get("name") == name
        and not (e.get("objectRef") or {}).get("subresource")
    ]


# --- the router Secrets, every version ----------------------------------------------------


class SecretWatch:
    """Watch every ``<name>-llm`` Secret in a namespace straight from the API server
    (reconnecting through outages) and record any version whose four BYO keys are only
    partly there: what a router reading it at that moment would get."""

    def __init__(self, server: str, token: str, ca_file: Path, ns: str) -> None:
        self.url = (
            f"{server}/api/v1/namespaces/{ns}/secrets?labelSelector="
            "app.kubernetes.io%2Fmanaged-by%3Dbyollm-operator"
        )
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ctx = ssl.create_default_context(cafile=str(ca_file))
        self.versions = 0
        self.partial: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SecretWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _see(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if not name.endswith("-llm"):
            return
        self.versions += 1
        data = obj.get("data") or {}
        present = [k for k in contract.BYO_SECRET_KEYS if k in data]
        if 0 < len(present) < len(contract.BYO_SECRET_KEYS):
            self.partial.append(f"{name}@{obj['metadata']['resourceVersion']}: {present}")

    def _run(self) -> None:
        rv = ""
        with httpx.Client(verify=self.ctx, headers=self.headers, timeout=None) as http:
            while not self._stop.is_set():
                try:
                    if not rv:
                        listing = http.get(self.url, timeout=10).raise_for_status().json()
                        for obj in listing["items"]:
                            self._see(obj)
                        rv = listing["metadata"]["resourceVersion"]
                    url = f"{self.url}&watch=1&resourceVersion={rv}&timeoutSeconds=5"
                    with http.stream("GET", url, timeout=httpx.Timeout(10, read=15)) as resp:
                        resp.raise_for_status()
                        for line in resp.iter_lines():
                            ev = json.loads(line)
                            if ev["type"] == "ERROR":
                                rv = ""  # 410 Gone: list again
                                break
                            if ev["type"] in ("ADDED", "MODIFIED"):
                                self._see(ev["object"])
                            rv = ev["object"]["metadata"]["resourceVersion"]
                except (httpx.HTTPError, OSError, ValueError, KeyError):
                    self._stop.wait(0.3)


def wait(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KubeError, OSError, httpx.HTTPError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
