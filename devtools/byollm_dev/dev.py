"""``byollm dev``: the whole product on one machine, without Docker.

A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes) runs
the CRD, the operator runs as a subprocess with its own least-privilege identity, and a
small local pod runner plays kubelet for router Deployments: for the current pod template
of every router Deployment it starts ``byollm-router`` on 127.0.0.1 with exactly the env the
operator wrote (envFrom Secret + secretKeyRef resolved from the API) and restarts it when
the template (its config-hash annotation) changes. kwok marks the real Pods Running, so
rollouts and conditions behave as in a cluster.

Cluster DNS is the one thing a laptop lacks: the example LLMConfig names its upstream as
an in-cluster Service (``http://stub.<ns>.svc:PORT/v1`` -- the CRD refuses loopback URLs, as
it should), so the runner starts routers through :mod:`byollm_dev.devpod`, which
resolves ``*.svc`` names to 127.0.0.1 the way CoreDNS would resolve them to a ClusterIP.
The router's SSRF guard still checks the address against the operator's allowlist.

The example tenant's provider is, by default, a real model on this machine: SmolLM2-135M
behind llama-cpp-python's OpenAI-compatible server (``hack/model.sh`` builds and caches
it on first use), so the first run shows a real answer through the tenant's router.
``--upstream stub`` keeps the instant echo stub; ``--upstream-url`` points anywhere else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from byollm import api
from byollm.client import AlreadyExistsError, Client, LLMConfigError
from byollm.kube import Kube, KubeError
from byollm_dev import controlplane, localmodel, rbac

OPERATOR_NAMESPACE: Final = "byollm-system"
EXAMPLE_NAME: Final = "demo"
STUB_MODEL: Final = "stub-model"
DEV_KEY: Final = "sk-dev-0123456789abcdef"
ROUTER_SELECTOR: Final = (
    "app.kubernetes.io/managed-by=byollm-operator,app.kubernetes.io/component=router"
)
STUB_SCRIPT: Final = controlplane.REPO_ROOT / "tests" / "stubs" / "provider.py"
# Upstreams ``byollm dev`` can start itself: a real small model, or the echo stub.
UPSTREAMS: Final = ("model", "stub")
FIRST_PROMPT: Final = "Say hello to a new byollm user in one short sentence."


def _session() -> None:  # pragma: no cover - runs in the child before exec
    """Own session (a terminal's Ctrl-C reaches only ``byollm dev``, which stops children in
    order) and SIGKILL if ``byollm dev`` itself dies."""
    controlplane._die_with_parent()


def _log(msg: str) -> None:
    sys.stderr.write(f"byollm dev: {msg}\n")
    sys.stderr.flush()


def _wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    abort: threading.Event | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (proc is not None and proc.poll() is not None) or (abort and abort.is_set()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return True
        except Exception:
            time.sleep(0.1)
    return False


# --- the local pod runner ---------------------------------------------------------------


@dataclass
class LocalPod:
    """One router Deployment served by a local process."""

    namespace: str
    deployment: str
    port: int
    template_key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


class PodRunner:
    """Runs the current pod template of every router Deployment as a local process."""

    def __init__(self, kube: Kube, log_dir: Path, state_file: Path | None) -> None:
        self.kube = kube
        self.log_dir = log_dir
        self.state_file = state_file
        self.pods: dict[tuple[str, str], LocalPod] = {}
        self.stop_flag = threading.Event()
        self.changed = threading.Condition()
        self.error: str | None = None
        self.lock = threading.Lock()

    def _get(self, path: str) -> dict[str, Any]:
        return self.kube.request("GET", path)

    def resolve_env(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment as the kubelet would build it (envFrom, then env)."""
        env: dict[str, str] = {}
        secrets_cache: dict[str, dict[str, str]] = {}

        def secret(name: str) -> dict[str, str]:
            if name not in secrets_cache:
                data = self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}").get("data") or {}
                secrets_cache[name] = {k: base64.b64decode(v).decode() for k, v in data.items()}
            return secrets_cache[name]

        for src in container.get("envFrom") or []:
            if "secretRef" in src:
                env.update(secret(src["secretRef"]["name"]))
            elif "configMapRef" in src:
                cm = self._get(
                    f"/api/v1/namespaces/{namespace}/configmaps/{src['configMapRef']['name']}"
                )
                env.update(cm.get("data") or {})
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif ref := (item.get("valueFrom") or {}).get("secretKeyRef"):
                env[item["name"]] = secret(ref["name"])[ref["key"]]
        return env

    def sync_once(self) -> None:
        items = self.kube.request(
            "GET", "/apis/apps/v1/deployments", query=[("labelSelector", ROUTER_SELECTOR)]
        ).get("items", [])
        seen = set()
        for dep in items:
            meta = dep["metadata"]
            key = (meta["namespace"], meta["name"])
            seen.add(key)
            template = dep["spec"]["template"]
            container = next(
                (c for c in template["spec"]["containers"] if c["name"] == "router"),
                template["spec"]["containers"][0],
            )
            try:
                env = self.resolve_env(meta["namespace"], container)
            except (KubeError, KeyError):
                continue  # a Secret not written yet: the kubelet would wait too
            # Like a kubelet: a new pod only for a new template. The env is read when the
            # process starts; the operator writes the Secret before the Deployment, and the
            # template's config hash changes with everything the Secret holds.
            template_key = json.dumps(template, sort_keys=True)
            pod = self.pods.get(key)
            if pod is None:
                pod = self.pods[key] = LocalPod(
                    meta["namespace"], meta["name"], controlplane.free_port()
                )
            if pod.template_key != template_key or (pod.proc and pod.proc.poll() is not None):
                self._start(pod, env, template_key)
        for key in list(self.pods):
            if key not in seen:
                self._stop(self.pods.pop(key))
                _log(f"router {key[0]}/{key[1]} deleted; local process stopped")
                self._write_state()

    def _start(self, pod: LocalPod, env: dict[str, str], template_key: str) -> None:
        restarting = pod.proc is not None
        self._stop(pod)
        log = open(self.log_dir / f"router-{pod.namespace}-{pod.deployment}.log", "ab")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "byollm_dev.devpod",
            "--host",
            "127.0.0.1",
            "--port",
            str(pod.port),
        ]
        # Exactly the env the operator wrote, nothing inherited (no KUBECONFIG, no LiteLLM).
        pod.proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_session
        )
        log.close()
        pod.env, pod.template_key = env, template_key
        if restarting:
            pod.restarts += 1
        ok = pod.ready = _wait_http(
            f"http://127.0.0.1:{pod.port}/readyz", 20, pod.proc, self.stop_flag
        )
        what = "restarted (new pod template)" if restarting else "started"
        mode = env.get("LLM_MODE", "?")
        detail = (
            f"{env.get('LLM_PROVIDER', '-')}/{env.get('LLM_MODEL', '-')}"
            if mode == "BYO"
            else "shared LiteLLM"
        )
        _log(
            f"router {pod.namespace}/{pod.deployment} {what}: pid {pod.proc.pid}, {pod.endpoint} "
            f"(mode {mode}, {detail}){'' if ok else ' -- NOT ready, see its log'}"
        )
        self._write_state()

    @staticmethod
    def _stop(pod: LocalPod) -> None:
        if pod.proc is not None:
            controlplane.stop_process(pod.proc)

    def _write_state(self) -> None:
        with self.changed:
            self.changed.notify_all()
        if self.state_file is None:
            return
        routers = {
            f"{p.namespace}/{p.deployment}": {
                "endpoint": p.endpoint,
                "pid": p.proc.pid if p.proc else None,
                "restarts": p.restarts,
                "configHash": p.env and _config_hash(p.template_key),
            }
            for p in self.pods.values()
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(routers, indent=2))
        tmp.replace(self.state_file)

    def run(self, period: float = 0.5) -> None:
        while not self.stop_flag.is_set():
            try:
                with self.lock:
                    if self.stop_flag.is_set():
                        break
                    self.sync_once()
            except Exception as e:  # keep serving; the API server may be restarting
                self.error = f"{type(e).__name__}: {e}"
            self.stop_flag.wait(period)

    def shutdown(self) -> list[subprocess.Popen[bytes]]:
        """Stop syncing; return the router processes for the caller to stop (in parallel)."""
        self.stop_flag.set()
        with self.lock:
            return [p.proc for p in self.pods.values() if p.proc is not None]


def _config_hash(template_key: str) -> str | None:
    template = json.loads(template_key)
    value = (template.get("metadata", {}).get("annotations") or {}).get("byollm.io/config-hash")
    return str(value) if value else None


# --- the stack --------------------------------------------------------------------------


def default_state_dir() -> Path:
    """Where ``byollm dev`` keeps its control plane and logs unless told otherwise."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "byollm" / "dev-state"


class DevStack:
    """Everything ``byollm dev`` starts, stopped in reverse order."""

    def __init__(self, state_dir: Path | None) -> None:
        if state_dir is None:
            # One directory, reused: a stable KUBECONFIG path, nothing piling up in /tmp.
            # The previous run's cluster is discarded (the example is re-applied).
            state_dir = default_state_dir()
            shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.cp: controlplane.ControlPlane | None = None
        self.runner: PodRunner | None = None
        self.api: Any = None

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        assert self.cp is not None
        log = open(self.cp.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_session
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, grace: float = 1.0) -> None:
        """SIGTERM every process at once, SIGKILL what is left after ``grace`` seconds."""
        procs = self.runner.shutdown() if self.runner is not None else []
        procs += [proc for _, proc in reversed(self.procs)]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.api is not None:
            self.api.close()
        if self.cp is not None:
            self.cp.stop(grace=grace)  # a dev cluster: its state is discarded next run


def _install(kube: Kube) -> None:
    kube.apply(api.crd_manifest())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = kube.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{api.CRD_NAME}"
        )
        conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        if conds.get("Established") == "True":
            with contextlib.suppress(KubeError):  # discovery can lag Established
                kube.request("GET", f"/apis/{api.GROUP}/{api.VERSION}/{api.PLURAL}")
                break
        time.sleep(0.2)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    subject = {
        "kind": "User",
        "name": controlplane.OPERATOR_USER,
        "apiGroup": "rbac.authorization.k8s.io",
    }
    for manifest in rbac.manifests(namespace=OPERATOR_NAMESPACE, subject=subject):
        kube.apply(manifest)


# --- the local model ---------------------------------------------------------------------


def start_local_model(stack: DevStack) -> tuple[localmodel.ModelServer, float] | None:
    """Build (first use, progress on stderr) and start the local model server on loopback,
    without waiting for it to load; (server, build seconds), or None when unavailable."""
    t0 = time.monotonic()
    try:
        built = localmodel.build()
    except localmodel.ModelUnavailable as e:
        _log(f"!!! the local model is unavailable: {e}")
        return None
    build_seconds = time.monotonic() - t0
    log_dir = stack.state_dir / "controlplane" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "local-model.log", "ab") as log:
        server = localmodel.start(built, log)
    stack.procs.append(("local-model", server.proc))
    return server, build_seconds


def first_answer(endpoint: str, token: str, timeout: float = 60) -> tuple[str, float]:
    """One chat through the tenant's router: (the answer on one line, seconds), or
    ("(no answer: <error kind>)", seconds). Shown once on stdout, never logged: it is the
    example tenant's completion for our own prompt."""
    body = json.dumps(
        {
            "messages": [{"role": "user", "content": FIRST_PROMPT}],
            "max_tokens": 48,
            "temperature": 0,
        }
    ).encode()
    req = urllib.request.Request(  # noqa: S310 - the router on loopback
        f"{endpoint}/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            data = json.loads(resp.read())
        text = str(data["choices"][0]["message"].get("content") or "").strip()
    except Exception as e:
        return f"(no answer: {type(e).__name__})", time.monotonic() - t0
    return " ".join(text.split()), time.monotonic() - t0


def run(
    upstream_url: str | None = None,
    state_dir: Path | None = None,
    example: bool = True,
    namespace: str = "byollm-dev",
    ready_file: Path | None = None,
    model: str | None = None,
    api_key: str | None = None,
    upstream: str = "model",
) -> int:
    """Start the stack, print how to use it, serve until SIGINT/SIGTERM; 0 on a clean stop.

    ``upstream`` ("model" or "stub") is what to start as the example's provider when no
    ``upstream_url`` is given.
    """
    if upstream not in UPSTREAMS:
        raise ValueError(f"upstream must be one of {UPSTREAMS}, not {upstream!r}")
    stack = DevStack(state_dir)
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(
            stack, stopping, upstream_url, upstream, example, namespace, ready_file, model, api_key
        )
    except controlplane.ControlPlaneUnavailable as e:
        _log(f"cannot start the control plane: {e}")
        return 1
    except (LLMConfigError, KubeError, RuntimeError, OSError) as e:
        _log(f"failed: {e}")
        return 1
    finally:
        _log("stopping ...")
        stack.stop()
        for s, h in old.items():
            signal.signal(s, h)
        _log("stopped")


def _run(
    stack: DevStack,
    stopping: threading.Event,
    upstream_url: str | None,
    upstream: str,
    example: bool,
    namespace: str,
    ready_file: Path | None,
    model: str | None,
    api_key: str | None,
) -> int:
    from kubernetes import config

    started = time.monotonic()
    local_model = None
    if upstream_url is None and upstream == "model":
        _log("starting the local model (SmolLM2-135M-Instruct on llama-cpp-python) ...")
        begun = start_local_model(stack)
        if begun is None:
            _log("!!! serving the echo stub instead (what --upstream stub does)")
        else:
            local_model, build_seconds = begun
            if build_seconds > 5:
                _log(f"local model built in {build_seconds:.0f}s (cached from now on)")
    _log(f"starting the local control plane (state in {stack.state_dir}) ...")
    stack.cp = cp = controlplane.start(
        state_dir=stack.state_dir / "controlplane", progress=sys.stderr
    )
    _log(f"control plane up in {cp.startup_seconds:.1f}s at {cp.server}; logs in {cp.log_dir}")
    stack.api = config.new_client_from_config(config_file=str(cp.kubeconfig))  # type: ignore[no-untyped-call]
    kube = Kube(stack.api, "byollm-dev")
    _install(kube)
    _log(f"CRD {api.CRD_NAME} installed; RBAC for user {controlplane.OPERATOR_USER} applied")

    stub_host = f"stub.{namespace}.svc"
    allowlist = ""
    if local_model is not None:
        try:
            load = local_model.wait_ready()
        except localmodel.ModelUnavailable as e:
            raise RuntimeError(f"{e}; see {cp.log_dir}/local-model.log") from None
        _log(
            f"local model {localmodel.LOCAL_MODEL} serving on 127.0.0.1:{local_model.port} "
            f"(loaded in {load:.1f}s)"
        )
        upstream_url = local_model.url
        model = model or localmodel.LOCAL_MODEL
    if upstream_url is None:
        if not STUB_SCRIPT.exists():
            raise RuntimeError("no stub upstream outside a clone; pass --upstream-url")
        port = controlplane.free_port()
        stub = stack.spawn(
            "stub-upstream",
            [sys.executable, str(STUB_SCRIPT), "--port", str(port)],
            dict(os.environ),
        )
        if not _wait_http(f"http://127.0.0.1:{port}/_stub/health", 15, stub):
            raise RuntimeError(f"stub upstream did not start; see {cp.log_dir}/stub-upstream.log")
        upstream_url = f"http://{stub_host}:{port}/v1"
        allowlist = f"{stub_host},127.0.0.1"
        _log(f"stub upstream (OpenAI-compatible) on 127.0.0.1:{port}, named {upstream_url}")
    else:
        local = urlsplit(upstream_url)
        if local.hostname in ("127.0.0.1", "localhost", "::1"):
            # A server on this machine (llama.cpp, Ollama, vLLM): the CRD rightly refuses a
            # loopback baseURL, so name it as an in-cluster Service, as it would be deployed.
            stub_host = f"{'model' if local_model else 'upstream'}.{namespace}.svc"
            upstream_url = f"http://{stub_host}:{local.port or 80}{local.path or '/v1'}"
            allowlist = f"{stub_host},127.0.0.1"
            _log(f"local upstream {local.netloc} named {upstream_url}")

    managed_url = None
    if STUB_SCRIPT.exists():
        # A stand-in for the platform's shared LiteLLM, so toggling a tenant to Managed
        # shows calls leaving the tenant's provider for the shared path.
        mport = controlplane.free_port()
        shared = stack.spawn(
            "shared-litellm",
            [sys.executable, str(STUB_SCRIPT), "--port", str(mport), "--allow-no-key"],
            dict(os.environ),
        )
        if not _wait_http(f"http://127.0.0.1:{mport}/_stub/health", 15, shared):
            raise RuntimeError(f"shared LiteLLM stub did not start; see {cp.log_dir}")
        managed_url = f"http://litellm.{OPERATOR_NAMESPACE}.svc:{mport}/v1"
        _log(f"shared LiteLLM stand-in on 127.0.0.1:{mport}, named {managed_url}")

    op_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BYOLLM_")},
        "KUBECONFIG": str(cp.operator_kubeconfig),
        "BYOLLM_NAMESPACE": OPERATOR_NAMESPACE,
        "BYOLLM_LEADER_ELECTION": "false",
        "BYOLLM_ROUTER_IMAGE": "byollm/router:dev",
        "BYOLLM_UPSTREAM_ALLOWLIST": allowlist,
        "BYOLLM_PROBE_RESOLVE": json.dumps({stub_host: "127.0.0.1"}) if allowlist else "{}",
        "BYOLLM_RESYNC_PERIOD": "60",
        **({"BYOLLM_MANAGED_URL": managed_url} if managed_url else {}),
    }
    operator = stack.spawn("operator", [sys.executable, "-m", "byollm_operator.main"], op_env)
    _log(
        f"operator running as user {controlplane.OPERATOR_USER} (pid {operator.pid}); "
        f"log {cp.log_dir}/operator.log"
    )

    stack.runner = runner = PodRunner(kube, cp.log_dir, stack.state_dir / "routers.json")
    threading.Thread(target=runner.run, daemon=True, name="pod-runner").start()
    _log("local pod runner watching router Deployments")

    info: dict[str, Any] = {
        "kubeconfig": str(cp.kubeconfig),
        "namespace": namespace,
        "routersFile": str(stack.state_dir / "routers.json"),
        "logDir": str(cp.log_dir),
        "upstream": upstream_url,
        "managedUpstream": managed_url,
    }
    if example:
        sdk = Client(namespace, api_client=stack.api)
        info.update(
            _apply_example(stack, kube, sdk, namespace, upstream_url, model, api_key, stopping)
        )
        info["firstAnswer"], info["firstAnswerSeconds"] = first_answer(
            info["endpoint"], info["token"]
        )
    info["startSeconds"] = round(time.monotonic() - started, 1)
    _log(f"ready in {info['startSeconds']:.1f}s")
    _print_usage(cp, info, example)
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(ready_file)
    while not stopping.wait(1.0):
        if operator.poll() is not None:
            _log(f"operator exited with {operator.returncode}; see {cp.log_dir}/operator.log")
            return 1
    return 0


def _apply_example(
    stack: DevStack,
    kube: Kube,
    sdk: Client,
    namespace: str,
    upstream_url: str,
    model: str | None,
    api_key: str | None,
    stopping: threading.Event,
) -> dict[str, Any]:
    assert stack.runner is not None
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    fields: dict[str, Any] = {
        "provider": "custom",
        "base_url": upstream_url,
        "default_model": model or STUB_MODEL,
        "api_key": api_key or os.environ.get("BYOLLM_DEV_API_KEY") or DEV_KEY,
    }
    try:
        sdk.create(EXAMPLE_NAME, **fields)
    except AlreadyExistsError:  # a kept state directory: bring the example up to date
        sdk.update(EXAMPLE_NAME, mode="BYO", active=True, **fields)
    _log(f"applied LLMConfig {namespace}/{EXAMPLE_NAME} (BYO, custom -> {upstream_url})")
    deadline = time.monotonic() + 90
    view = None
    while time.monotonic() < deadline and not stopping.is_set():
        view = sdk.get(EXAMPLE_NAME)
        pod = stack.runner.pods.get((namespace, f"{EXAMPLE_NAME}-router"))
        if view.ready and pod is not None and pod.ready:
            break
        time.sleep(0.3)
    else:
        cond = view.condition("Ready") if view else None
        raise RuntimeError(f"example LLMConfig not Ready in time: {cond}")
    token_secret = kube.request(
        "GET", f"/api/v1/namespaces/{namespace}/secrets/{EXAMPLE_NAME}-router-token"
    )
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    return {
        "name": EXAMPLE_NAME,
        "endpoint": pod.endpoint,
        "clusterEndpoint": view.endpoint,
        "token": token,
        "model": view.model,
    }


def _venv_python() -> str:
    """The interpreter running byollm dev, short when it is the clone's .venv."""
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(exe.relative_to(Path.cwd()))
    return str(exe)


def _print_usage(cp: controlplane.ControlPlane, info: dict[str, Any], example: bool) -> None:
    out = sys.stdout
    bar = "-" * 78
    lines = [
        bar,
        "byollm is running locally. Ctrl-C stops everything.",
        "",
        f"  export KUBECONFIG={info['kubeconfig']}",
        "  kubectl get llmc -A            # or: byollm status -A",
    ]
    if example:
        lines += [
            "",
            f"Tenant router for {info['namespace']}/{info['name']} (a local process; in a cluster:",
            f"{info['clusterEndpoint']}):",
            "",
            f"  export OPENAI_BASE_URL={info['endpoint']}",
            f"  export OPENAI_API_KEY={info['token']}",
            "",
            f"It already answered, from {info['model']} through that router "
            f"({info['firstAnswerSeconds']:.1f}s):",
            f"  > {FIRST_PROMPT}",
            f"  < {info['firstAnswer']}",
            "",
            "  curl -s $OPENAI_BASE_URL/chat/completions \\",
            '    -H "Authorization: Bearer $OPENAI_API_KEY" \\',
            "    -H 'Content-Type: application/json' \\",
            '    -d \'{"messages": [{"role": "user", "content": "Hello"}]}\'',
            "",
            "  # the project's venv has openai (elsewhere: pip install openai)",
            f"  {_venv_python()} -c 'import openai; print(openai.OpenAI().chat.completions.create(",
            f'    model="{info["model"]}", messages=[{{"role": "user", "content": "Hello"}}]'
            ").choices[0].message.content)'",
            "",
            "  # the Responses API ($OPENAI_BASE_URL/responses) and, for Claude-native agents,",
            "  # the Messages API (anthropic SDK, Claude Code): docs/protocols.md",
            f"  export ANTHROPIC_BASE_URL={info['endpoint'].removesuffix('/v1')}",
            f"  export ANTHROPIC_API_KEY={info['token']}",
            "",
            "Switch model or provider and watch the local router restart with the new config:",
            f"  kubectl -n {info['namespace']} patch llmc {info['name']} --type merge "
            '-p \'{"spec": {"provider": {"defaultModel": "stub-model-2"}}}\'',
            f"  kubectl -n {info['namespace']} patch llmc {info['name']} --type merge "
            '-p \'{"spec": {"active": false}}\'   # serve Managed',
        ]
    lines += [
        "",
        "Each tenant's router runs on this machine; its local URL (status.endpoint is the",
        f"in-cluster one) is logged above and kept in {info['routersFile']}",
        '  ({"<namespace>/<name>-router": {"endpoint", "pid", "restarts", "configHash"}}).',
        "",
        f"Logs: {info['logDir']}",
        bar,
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()
