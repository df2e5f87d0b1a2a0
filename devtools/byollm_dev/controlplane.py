"""A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok's fake kubelet, all on 127.0.0.1.

Used by the test fixtures and by ``byollm dev``. Mocked Kubernetes proves nothing about
server-side apply, CEL, ownerReferences, garbage collection or rollouts; this does, and it
needs no Docker engine. Binaries come from ``hack/controlplane/build.sh`` (built once from
their Go modules, cached by version), or from ``KUBEBUILDER_ASSETS`` (setup-envtest).

Every process is started in its own session with a parent-death signal, so nothing is
orphaned even when the parent is killed; :meth:`ControlPlane.stop` is idempotent.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"
KWOK_STAGES = REPO_ROOT / "hack" / "controlplane" / "kwok-stages.yaml"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
ADMIN_USER = "byollm-admin"
OPERATOR_USER = "byollm-operator"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ControlPlaneUnavailable(RuntimeError):
    """The binaries cannot be had here (no Go, no module proxy, build failed)."""


@dataclass
class BuildResult:
    bin_dir: Path
    seconds: float
    built: bool  # False: found in the cache (or KUBEBUILDER_ASSETS), nothing was compiled


def ensure_binaries(progress: IO[str] | None = None) -> BuildResult:
    """Return a folder holding all five binaries, building them on the first call only."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and all((Path(assets) / name).is_file() for name in COMPONENTS):
        return BuildResult(Path(assets), 0.0, built=False)
    if not BUILD_SCRIPT.is_file():
        raise ControlPlaneUnavailable(f"{BUILD_SCRIPT} not found (run from a byollm clone)")
    if shutil.which("go") is None:
        raise ControlPlaneUnavailable(
            "no Go toolchain on PATH to build the control plane: install Go, or set "
            "KUBEBUILDER_ASSETS to a folder with etcd, kube-apiserver, kube-controller-manager, "
            "kube-scheduler and kwok (setup-envtest), or for the tests set "
            "BYOLLM_TEST_KUBECONFIG to an existing cluster's kubeconfig"
        )
    start = time.monotonic()
    try:
        lines = run_build_script(BUILD_SCRIPT, progress=progress)
    except BuildScriptFailed as e:
        raise ControlPlaneUnavailable(f"control plane build failed {e}") from None
    seconds = time.monotonic() - start
    return BuildResult(Path(lines[-1]), seconds, built=seconds > 5)


class BuildScriptFailed(Exception):
    """A build script exited non-zero; the message holds the exit code and its stderr tail."""


def run_build_script(script: Path, *args: str, progress: IO[str] | None = None) -> list[str]:
    """Run one of hack/'s build scripts: stdout lines back (the paths it built), stderr to
    ``progress`` (or kept for the error, when there is no progress stream)."""
    proc = subprocess.run(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=progress if progress is not None else subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildScriptFailed(f"(exit {proc.returncode}): {(proc.stderr or '')[-2000:]}")
    return proc.stdout.strip().splitlines()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM ``proc``, then SIGKILL it if it has not exited after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Runs in the child before exec: ask Linux to SIGKILL it if the parent dies."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class ControlPlane:
    """A running control plane. Create with :func:`start`; stop with :meth:`stop`."""

    state_dir: Path
    bin_dir: Path
    server: str = ""
    etcd_endpoint: str = ""
    admin_token: str = field(default="", repr=False)
    operator_token: str = field(default="", repr=False)
    startup_seconds: float = 0.0
    build: BuildResult | None = None
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _args: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        """Admin (system:masters) kubeconfig."""
        return self.state_dir / "admin.kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """Kubeconfig for user ``byollm-operator``: no rights until RBAC grants them."""
        return self.state_dir / "operator.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki" / "apiserver.crt"

    # --- lifecycle ------------------------------------------------------------------
    def _spawn(self, name: str, args: Sequence[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(out)
        self._args[name] = list(args)
        self._procs[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

    def _check_alive(self, only: str | None = None) -> None:
        for name, proc in self._procs.items():
            if only is not None and name != only:
                continue
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}"
                )

    def stop(self, grace: float = 10.0) -> None:
        """Stop every component, newest first: SIGTERM, then SIGKILL after ``grace`` s."""
        for _, proc in reversed(list(self._procs.items())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()

    # --- faults (tests/faults/) --------------------------------------------------------
    def stop_component(self, name: str, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """Stop one component (``signal.SIGKILL``: a crash, nothing flushed); the others run
        on. :meth:`start_component` brings it back with the same ports and data."""
        proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill_component(self, name: str) -> None:
        """SIGKILL one component (a crash)."""
        self.stop_component(name, signal.SIGKILL)

    def start_component(self, name: str, timeout: float = 90.0) -> None:
        """Start a stopped component again with its original arguments; for etcd and the
        API server, return once it answers its health check."""
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            return
        self._spawn(name, self._args[name])
        if name == "etcd":
            _wait("etcd", lambda: _etcd_healthy(self), self, timeout, only=name)
        elif name == "kube-apiserver":
            _wait(
                "kube-apiserver", lambda: self.request("/readyz") == "ok", self, timeout, only=name
            )

    def running(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- access ---------------------------------------------------------------------
    def request(self, path: str, method: str = "GET", body: object | None = None) -> object:
        """A raw admin request to the API server (used for health checks and set-up)."""
        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca_file))) as http:
            resp = http.request(
                method,
                self.server + path,
                json=body,
                headers={"Authorization": f"Bearer {self.admin_token}"},
                timeout=10,
            )
        resp.raise_for_status()
        return resp.json() if resp.content.startswith(b"{") else resp.text

    def _etcd_range(self, body: dict[str, object]) -> list[dict[str, str]]:
        resp = httpx.post(f"{self.etcd_endpoint}/v3/kv/range", json=body, timeout=10)
        resp.raise_for_status()
        kvs: list[dict[str, str]] = resp.json().get("kvs", [])
        return kvs

    def etcd_get(self, key: str) -> bytes:
        """Raw value stored in etcd under ``key`` (e.g. ``/registry/secrets/ns/name``).

        Uses etcd's v3 JSON gateway, so no etcdctl binary is needed.
        """
        kvs = self._etcd_range({"key": _b64(key)})
        if not kvs:
            raise KeyError(key)
        return base64.b64decode(kvs[0]["value"])

    def etcd_keys(self, prefix: str = "/registry/") -> list[str]:
        """Every key under ``prefix``; for audits of what is stored in clear."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        kvs = self._etcd_range({"key": _b64(prefix), "range_end": _b64(end), "keys_only": True})
        return [base64.b64decode(kv["key"]).decode() for kv in kvs]


def _etcd_healthy(cp: ControlPlane) -> bool:
    return b'"true"' in httpx.get(cp.etcd_endpoint + "/health", timeout=2).content


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write_kubeconfig(path: Path, server: str, ca: Path, user: str, token: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "byollm-local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "byollm-local", "user": user}}],
        "current-context": user,
    }
    path.write_text(json.dumps(cfg, indent=2))
    path.chmod(0o600)


def _write_static_config(state: Path, admin_token: str, operator_token: str) -> None:
    """Token file, service-account key and the Secrets encryption config (AES-GCM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pki = state / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    (state / "tokens.csv").write_text(
        f'{admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
        f"{operator_token},{OPERATOR_USER},uid-operator\n"
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pki / "sa.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (pki / "sa.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode()
    (state / "encryption.yaml").write_text(
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        "  - resources: [secrets]\n"
        "    providers:\n"
        "      - aesgcm:\n"
        "          keys:\n"
        f"            - {{name: key1, secret: {aes_key}}}\n"
        "      - identity: {}\n"
    )


def _wait(
    what: str, check: object, cp: ControlPlane, timeout: float, only: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        cp._check_alive(only)
        try:
            if callable(check) and check():
                return
        except (OSError, httpx.HTTPError, ValueError) as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s ({last}); logs in {cp.log_dir}")


def _node(name: str) -> dict[str, object]:
    """A fake node kwok manages: enough capacity for hundreds of router pods."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
        },
    }


def start(
    state_dir: Path | None = None,
    nodes: int = 2,
    progress: IO[str] | None = None,
) -> ControlPlane:
    """Build (first time only) and start the control plane; return once it is usable."""
    build = ensure_binaries(progress)
    state = state_dir or Path(tempfile.mkdtemp(prefix="byollm-cp-"))
    state.mkdir(parents=True, exist_ok=True)
    cp = ControlPlane(
        state_dir=state,
        bin_dir=build.bin_dir,
        admin_token=secrets.token_urlsafe(24),
        operator_token=secrets.token_urlsafe(24),
        build=build,
    )
    t0 = time.monotonic()
    try:
        _start_components(cp, nodes)
    except BaseException:
        cp.stop()
        raise
    cp.startup_seconds = time.monotonic() - t0
    return cp


def _start_components(cp: ControlPlane, nodes: int) -> None:
    state = cp.state_dir
    _write_static_config(state, cp.admin_token, cp.operator_token)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    cp.etcd_endpoint = f"http://127.0.0.1:{etcd_port}"
    cp.server = f"https://127.0.0.1:{api_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    cp._spawn(
        "etcd",
        [
            "--name=default",
            f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={cp.etcd_endpoint}",
            f"--advertise-client-urls={cp.etcd_endpoint}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )

    _wait("etcd", lambda: _etcd_healthy(cp), cp, 30)
    pki = state / "pki"
    cp._spawn(
        "kube-apiserver",
        [
            f"--etcd-servers={cp.etcd_endpoint}",
            f"--cert-dir={pki}",
            f"--secure-port={api_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            f"--token-auth-file={state / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--encryption-provider-config={state / 'encryption.yaml'}",
            "--allow-privileged=false",
            "--enable-priority-and-fairness=false",
            # kwok nodes send no heartbeats and the node-lifecycle controller is off, so
            # nothing would lift the not-ready taint this plugin puts on new nodes.
            "--disable-admission-plugins=TaintNodesByCondition",
            "--audit-log-path=" + str(cp.log_dir / "audit.log"),
            f"--audit-policy-file={_audit_policy(state)}",
            "--v=1",
        ],
    )

    def apiserver_ready() -> bool:
        if not cp.ca_file.exists():
            return False
        return cp.request("/readyz") == "ok"

    _wait("kube-apiserver", apiserver_ready, cp, 90)
    _write_kubeconfig(cp.kubeconfig, cp.server, cp.ca_file, ADMIN_USER, cp.admin_token)
    _write_kubeconfig(
        cp.operator_kubeconfig, cp.server, cp.ca_file, OPERATOR_USER, cp.operator_token
    )
    kc = f"--kubeconfig={cp.kubeconfig}"
    cp._spawn(
        "kube-controller-manager",
        [
            kc,
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={cp.ca_file}",
            "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ],
    )
    cp._spawn("kube-scheduler", [kc, "--leader-elect=false", "--secure-port=0"])
    cp._spawn(
        "kwok",
        [
            kc,
            f"--config={KWOK_STAGES}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.240.0.1",
            f"--server-address=127.0.0.1:{free_port()}",
        ],
    )
    for i in range(nodes):
        cp.request("/api/v1/nodes", "POST", _node(f"kwok-node-{i}"))

    def default_sa_ready() -> bool:
        cp.request("/api/v1/namespaces/default/serviceaccounts/default")
        return True

    def nodes_ready() -> bool:
        items = cp.request("/api/v1/nodes")
        assert isinstance(items, dict)
        ready = [
            n
            for n in items["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= nodes

    _wait("controller-manager (default service account)", default_sa_ready, cp, 60)
    _wait("kwok nodes", nodes_ready, cp, 60)


def _audit_policy(state: Path) -> Path:
    """Log metadata of every write (the zero-writes-on-idle benchmark and tests count these)
    and of every list/watch of Secrets (tests check which Secrets the operator asks for)."""
    path = state / "audit-policy.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\n"
        "kind: Policy\n"
        "omitStages: [RequestReceived]\n"
        "rules:\n"
        "  - level: Metadata\n"
        "    verbs: [create, update, patch, delete, deletecollection]\n"
        "  - level: Metadata\n"
        "    verbs: [list, watch]\n"
        '    resources: [{group: "", resources: [secrets]}]\n'
        "  - level: None\n"
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m byollm_dev.controlplane``: start, print the kubeconfig, wait for Ctrl-C."""
    logging.basicConfig(level=logging.INFO)
    cp = start(progress=sys.stderr)
    print(f"control plane up in {cp.startup_seconds:.1f}s; KUBECONFIG={cp.kubeconfig}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
