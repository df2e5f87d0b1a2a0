"""A real Kubernetes node on this machine, for tests and ``byollm dev --real-node``.

Next to the control plane of :mod:`byollm_dev.controlplane` this starts containerd
(+ runc, CNI bridge) from Debian packages, a kubelet and kube-proxy built from the same Go
wrapper module, kube-router in firewall mode (NetworkPolicy) and CoreDNS (cluster DNS), so
router pods run from their real images, and a NetworkPolicy is enforced with packets.

Needs root on Linux. Binaries come from ``hack/node/build.sh`` (cached by version).

Network safety: pod addresses live only on a bridge this module creates. Pods get **no
default route** (only the pod subnet and the service CIDR, via the bridge); the service
CIDR is routed onto the bridge on the host, so an unmatched service address never takes
the host's default route; a guard chain in raw PREROUTING drops any packet from the bridge
to an address that is not a pod's or a service's (and any packet from elsewhere to those);
a second guard first in FORWARD drops forwarded traffic that does not stay on the bridge;
``ip_forward`` is restored.

Teardown (:meth:`RealNode.stop`) removes everything: pods' processes (by PID), mounts,
network namespaces, cgroups, iptables chains and ipsets of kubelet, kube-proxy and
kube-router, the guard chain, the bridge and the route. A record of what was set up is
kept in :data:`RUN_DIR`; :func:`cleanup_leftovers` runs at every start, so a crash or
Ctrl-C of a previous run leaves nothing behind for long. One run at a time (a flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from byollm_dev import controlplane
from byollm_dev.controlplane import ControlPlane, free_port

log = logging.getLogger(__name__)

REPO_ROOT = controlplane.REPO_ROOT
NODE_BUILD = REPO_ROOT / "hack" / "node" / "build.sh"
IMAGES_BUILD = REPO_ROOT / "hack" / "images.sh"
STATE_DIR = Path("/var/lib/byollm-realnode")
RUN_DIR = Path("/run/byollm-realnode")
LOCK_FILE = Path("/run/byollm-realnode.lock")
RECORD = RUN_DIR / "record.json"
NODE_NAME = "byollm-realnode"
BRIDGE = "byollm0"
POD_CIDR = "10.250.0.0/24"
NODE_IP = "10.250.0.1"
SERVICE_CIDR = "10.96.0.0/16"  # the control plane's --service-cluster-ip-range
DNS_IP = "10.96.0.10"
GUARD_CHAIN = "BYOLLM-GUARD"
API_NODE_PORT = 6443  # the API server, forwarded onto the node address for pods
# A TCP forwarder (argv: listen address, listen port, loopback port of the API server).
_FORWARDER = """
import asyncio, sys

async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except OSError:
        pass
    finally:
        w.close()

async def handle(r, w):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", int(sys.argv[3]))
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, uw), pipe(ur, w))

async def main():
    server = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
CGROUP_ROOT = "byollm-realnode"
CONTAINERD_NS = "k8s.io"
APT_PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "ipset",
    "conntrack",
    "buildah",
    "mmdebstrap",
)
# Commands each Debian package provides, to know what is missing.
_APT_COMMANDS = {
    "containerd": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "ipset": "ipset",
    "conntrack": "conntrack",
    "buildah": "buildah",
    "mmdebstrap": "mmdebstrap",
}
# Chains the node's components create (kubelet, kube-proxy, kube-router, CNI) and ours.
_CHAIN_PREFIXES = ("KUBE-", "CNI-", "BYOLLM-")
_IPSET_PREFIXES = ("KUBE-", "kube-router-", "inet6:KUBE-", "inet6:kube-router-")


class RealNodeUnavailable(RuntimeError):
    """A part of the real node cannot be had here (not root, no package, build failed)."""


# --- small helpers ------------------------------------------------------------------------


def _run(
    *args: str, check: bool = True, input_: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, check=check, input=input_, timeout=timeout
    )


def _quiet(*args: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _run(*args, check=False, timeout=60)


def _wait(
    what: str, check: Callable[[], object], timeout: float, alive: Callable[[], None]
) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        alive()
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last: {last!r})")


def _docker_archive(
    path: Path, ref: str, files: dict[str, tuple[bytes, int]], entry: list[str]
) -> None:
    """Write a one-layer docker-archive image (``ctr image import`` reads it)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        dirs = sorted({str(Path(n).parent) for n in files} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entry, "User": "0"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]
    ).encode()
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in (
            ("layer.tar", layer_bytes),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    controlplane._die_with_parent()


# --- parts --------------------------------------------------------------------------------


@dataclass
class Parts:
    """Every binary and image archive the node needs."""

    bins: dict[str, Path]
    images: dict[str, tuple[str, Path]]  # name -> (image ref, docker-archive)
    build_seconds: dict[str, float] = field(default_factory=dict)


def ensure_packages(progress: IO[str] | None = None) -> None:
    """Install the Debian packages the node needs when root and missing."""
    missing = [pkg for pkg, cmd in _APT_COMMANDS.items() if shutil.which(cmd) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise RealNodeUnavailable(f"missing {', '.join(missing)} and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ("install", "update"):
        if attempt == "update":
            subprocess.run(
                ["apt-get", "update", "-q"], env=env, stdout=progress, stderr=progress, check=False
            )
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-q", *APT_PACKAGES],
            env=env,
            stdout=progress,
            stderr=progress,
            check=False,
        )
        if proc.returncode == 0:
            return
    raise RealNodeUnavailable(f"apt-get install {' '.join(APT_PACKAGES)} failed")


def _script_lines(script: Path, progress: IO[str] | None) -> list[str]:
    start = time.monotonic()
    try:
        lines = controlplane.run_build_script(script, progress=progress)
    except controlplane.BuildScriptFailed as e:
        raise RealNodeUnavailable(f"{script.name} failed {e}") from None
    log.info("%s: %.0fs", script.name, time.monotonic() - start)
    return lines


def ensure_parts(progress: IO[str] | None = None) -> Parts:
    """Build (first time only) every binary and image; returns where they are."""
    if os.geteuid() != 0:
        raise RealNodeUnavailable("not root (containerd, kubelet and iptables need root)")
    if not Path("/sys/fs/cgroup").is_dir():
        raise RealNodeUnavailable("no cgroup filesystem")
    ensure_packages(progress)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    bins: dict[str, Path] = {}
    for line in _script_lines(NODE_BUILD, progress):
        name, _, value = line.partition("=")
        bins[name] = Path(value)
    timings["node parts"] = time.monotonic() - t0
    t0 = time.monotonic()
    images: dict[str, tuple[str, Path]] = {}
    for line in _script_lines(IMAGES_BUILD, progress):
        name, ref, archive, _size = line.split()
        images[name] = (ref, Path(archive))
    timings["images"] = time.monotonic() - t0
    # The sandbox (pause) and CoreDNS images: one static binary each.
    cache = bins["pause"].parent
    for name, binary, entry in (
        ("pause", bins["pause"], ["/pause"]),
        ("coredns", bins["coredns"], ["/coredns"]),
    ):
        tag = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
        ref = f"localhost/byollm-{name}:{tag}"
        tar = cache / f"{name}-image-{tag}.tar"
        if not tar.exists():
            _docker_archive(tar, ref, {name: (binary.read_bytes(), 0o755)}, entry)
        images[name] = (ref, tar)
    return Parts(bins=bins, images=images, build_seconds=timings)


# --- leftovers ----------------------------------------------------------------------------


def _mounts_under(*roots: Path) -> list[str]:
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4].encode().decode("unicode_escape")
            if any(mnt == str(r) or mnt.startswith(str(r) + "/") for r in roots):
                out.append(mnt)
    return sorted(set(out), key=len, reverse=True)


def _our_pids(record: dict[str, Any]) -> list[int]:
    """PIDs of processes this node started: recorded ones, and containerd's shims and the
    containers under our cgroup root (found by our unique socket path / cgroup, not by name)."""
    pids = {int(p) for p in record.get("pids", [])}
    sock = record.get("containerd_socket", "")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if sock and sock.encode() in (proc / "cmdline").read_bytes():
                pids.add(int(proc.name))
                continue
            if f"/{CGROUP_ROOT}/".encode() in (proc / "cgroup").read_bytes():
                pids.add(int(proc.name))
    pids.discard(os.getpid())
    return sorted(pids)


def _kill_pids(pids: list[int], record: dict[str, Any]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                alive.append(pid)
        deadline = time.monotonic() + (5 if sig == signal.SIGTERM else 3)
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.1)
        if not alive:
            return
        pids = _our_pids(record) or alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _iptables_cleanup() -> None:
    """Remove every chain (and every jump to it) whose name has one of our prefixes."""
    for cmd in ("iptables", "ip6tables"):
        if shutil.which(cmd) is None:
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            proc = subprocess.run(
                [cmd, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                continue
            ours = set()
            jumps = []
            for line in proc.stdout.splitlines():
                parts = shlex.split(line)
                if parts[:1] == ["-N"] and parts[1].startswith(_CHAIN_PREFIXES):
                    ours.add(parts[1])
                elif parts[:1] == ["-A"]:
                    target = parts[parts.index("-j") + 1] if "-j" in parts else ""
                    if not parts[1].startswith(_CHAIN_PREFIXES) and target.startswith(
                        _CHAIN_PREFIXES
                    ):
                        jumps.append(parts)
            for parts in jumps:
                _quiet(cmd, "-w", "-t", table, "-D", *parts[1:])
            for chain in ours:
                _quiet(cmd, "-w", "-t", table, "-F", chain)
            for chain in ours:
                _quiet(cmd, "-w", "-t", table, "-X", chain)


def _nft_tables() -> set[str]:
    if shutil.which("nft") is None:
        return set()
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    return {line.removeprefix("table ").strip() for line in out.stdout.splitlines() if line}


def _nft_table_cleanup(before: list[str] | None) -> None:
    """Delete the (now empty) iptables-nft tables that did not exist before the node."""
    if before is None:
        return
    for table in sorted(_nft_tables() - set(before)):
        family, _, name = table.partition(" ")
        cmd = {"ip": "iptables", "ip6": "ip6tables"}.get(family)
        if cmd is None or shutil.which(cmd) is None:
            continue
        rules = subprocess.run(
            [cmd, "-w", "-t", name, "-S"], capture_output=True, text=True, check=False
        )
        lines = rules.stdout.splitlines()
        if rules.returncode == 0 and all(
            line.endswith(" ACCEPT") and line.startswith("-P ") for line in lines
        ):
            _quiet("nft", "delete", "table", family, name)


def _ipset_cleanup() -> None:
    if shutil.which("ipset") is None:
        return
    proc = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=False)
    names = [n for n in proc.stdout.split() if n.startswith(_IPSET_PREFIXES)]
    for _ in range(2):  # list:set members first, then the sets they held
        for name in names:
            _quiet("ipset", "destroy", name)


def _cgroup_cleanup() -> None:
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / CGROUP_ROOT
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def cleanup_leftovers() -> None:
    """Remove everything a real node (this run's or a crashed one's) set up. Idempotent."""
    record: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(RECORD.read_text())
    pids = _our_pids(record)
    if pids:
        _kill_pids(pids, record)
    # Network namespaces of our pods (their bind mounts are under /run/netns).
    for ns in record.get("netns", []):
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", ns], capture_output=True, check=False)
            os.unlink(ns)
    for mnt in _mounts_under(STATE_DIR, RUN_DIR, Path("/run/netns")):
        if mnt.startswith("/run/netns/") and not _is_ours_netns(mnt, record):
            continue
        subprocess.run(["umount", "-l", mnt], capture_output=True, check=False)
    _iptables_cleanup()
    _nft_table_cleanup(record.get("nft_tables"))
    _ipset_cleanup()
    _quiet("ip", "route", "del", SERVICE_CIDR, "dev", BRIDGE)
    _quiet("ip", "link", "del", BRIDGE)
    if "ip_forward" in record:
        with contextlib.suppress(OSError):
            Path("/proc/sys/net/ipv4/ip_forward").write_text(str(record["ip_forward"]))
    _cgroup_cleanup()
    for d in (STATE_DIR, RUN_DIR):
        shutil.rmtree(d, ignore_errors=True)


def _is_ours_netns(path: str, record: dict[str, Any]) -> bool:
    """A /run/netns entry is ours if it was recorded or holds our bridge's pod addresses."""
    if path in record.get("netns", []):
        return True
    proc = subprocess.run(
        ["ip", "-n", Path(path).name, "-4", "-o", "addr"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.count(" 10.250.0.") > 0


# --- the node -----------------------------------------------------------------------------


@dataclass
class RealNode:
    """A running node. Create with :func:`start`; stop with :meth:`stop` (idempotent)."""

    cp: ControlPlane
    parts: Parts
    log_dir: Path
    lock: IO[str] | None = None
    startup_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)
    _record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def socket(self) -> Path:
        return RUN_DIR / "containerd.sock"

    def image(self, name: str) -> str:
        return self.parts.images[name][0]

    def ctr(self, *args: str, timeout: float = 120) -> str:
        proc = _run(
            "ctr",
            "--address",
            str(self.socket),
            "-n",
            CONTAINERD_NS,
            *args,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {proc.stderr.strip()[-1000:]}")
        return proc.stdout

    def _save_record(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(self._record))

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(out)
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            env=env,
        )
        self._procs[name] = proc
        self._record.setdefault("pids", []).append(proc.pid)
        self._save_record()

    def check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.log_dir / (name + '.log')}"
                )

    def stop(self) -> None:
        """Stop every component and remove everything the node set up."""
        # Pods first: stop the kubelet (it would restart them), then their processes.
        order = ["kubelet", *(n for n in reversed(self._procs) if n != "kubelet")]
        for name in order:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        # Keep the pods' logs next to the components' (the state directory goes away).
        with contextlib.suppress(OSError):
            if (STATE_DIR / "pod-logs").is_dir():
                shutil.copytree(STATE_DIR / "pod-logs", self.log_dir / "pods", dirs_exist_ok=True)
        cleanup_leftovers()
        for f in self._logs:
            f.close()
        self._logs.clear()
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def __enter__(self) -> RealNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- start ----------------------------------------------------------------------------
    def _start(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self._record = {
            "containerd_socket": str(self.socket),
            "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
            "nft_tables": sorted(_nft_tables()),
            "pids": [],
        }
        self._save_record()
        t = time.monotonic()
        self._network()
        self.timings["network"] = time.monotonic() - t
        t = time.monotonic()
        self._containerd()
        self.timings["containerd"] = time.monotonic() - t
        t = time.monotonic()
        for _ref, archive in self.parts.images.values():
            self.ctr("images", "import", str(archive), timeout=300)
        self.timings["image import"] = time.monotonic() - t
        t = time.monotonic()
        self._kubelet()
        self.timings["kubelet -> node Ready"] = time.monotonic() - t
        t = time.monotonic()
        self._kube_proxy()
        self._api_for_pods()
        self._kube_router()
        self._coredns()
        self.timings["kube-proxy, kube-router, CoreDNS Ready"] = time.monotonic() - t

    def _network(self) -> None:
        """The bridge, the service route and the guard chain, before any pod exists."""
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)
        # The bridge plugin turns ip_forward on. Two guards: in raw PREROUTING (the first
        # hook, where kube-proxy and kube-router put nothing, so no ACCEPT of theirs comes
        # first) a packet from the bridge may only go to a pod or service address, and no
        # packet from elsewhere may reach one; first in FORWARD, forwarded traffic may only
        # stay on the bridge (kube-router later moves its own jump above it).
        _run("iptables", "-w", "-t", "raw", "-N", GUARD_CHAIN)
        for rule in (
            ["-i", "lo", "-j", "RETURN"],  # the host's own traffic to its bridge address
            ["-i", BRIDGE, "-d", POD_CIDR, "-j", "RETURN"],
            ["-i", BRIDGE, "-d", SERVICE_CIDR, "-j", "RETURN"],
            ["-i", BRIDGE, "-j", "DROP"],
            ["!", "-i", BRIDGE, "-d", POD_CIDR, "-j", "DROP"],
            ["!", "-i", BRIDGE, "-d", SERVICE_CIDR, "-j", "DROP"],
        ):
            _run("iptables", "-w", "-t", "raw", "-A", GUARD_CHAIN, *rule)
        _run("iptables", "-w", "-t", "raw", "-I", "PREROUTING", "1", "-j", GUARD_CHAIN)
        _run("iptables", "-w", "-N", GUARD_CHAIN)
        for rule in (
            ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
            ["-i", BRIDGE, "-j", "DROP"],
            ["-o", BRIDGE, "-j", "DROP"],
        ):
            _run("iptables", "-w", "-A", GUARD_CHAIN, *rule)
        _run("iptables", "-w", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            if hierarchy.is_dir() and not hierarchy.is_symlink():
                with contextlib.suppress(OSError):
                    (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)
        cni = STATE_DIR / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-byollm.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "byollm",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "isDefaultGateway": False,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                                # No default route: only the service CIDR, via the bridge.
                                "routes": [{"dst": SERVICE_CIDR}],
                                "dataDir": str(STATE_DIR / "ipam"),
                            },
                        }
                    ],
                },
                indent=1,
            )
        )

    def _containerd(self) -> None:
        root = STATE_DIR / "containerd"
        config = root / "config.toml"
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"""version = 2
root = "{root / "root"}"
state = "{RUN_DIR / "containerd-state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{RUN_DIR / "containerd-ttrpc.sock"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.image("pause")}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{STATE_DIR / "cni"}"
"""
        )
        self._spawn("containerd", ["containerd", "--config", str(config)])
        _wait(
            "containerd",
            lambda: (
                _run("ctr", "--address", str(self.socket), "version", check=False).returncode == 0
            ),
            30,
            self.check_alive,
        )

    def _kubelet(self) -> None:
        kdir = STATE_DIR / "kubelet"
        kdir.mkdir(parents=True, exist_ok=True)
        healthz = free_port()
        cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "address": NODE_IP,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failSwapOn": False,
            "failCgroupV1": False,
            "resolvConf": "",
            "clusterDNS": [DNS_IP],
            "clusterDomain": "cluster.local",
            "podLogsDir": str(STATE_DIR / "pod-logs"),
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "maxPods": 60,
            "podPidsLimit": 1024,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": True,
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "registerNode": True,
        }
        (kdir / "config.json").write_text(json.dumps(cfg, indent=1))
        self._spawn(
            "kubelet",
            [
                str(self.parts.bins["kubelet"]),
                f"--config={kdir / 'config.json'}",
                f"--kubeconfig={self.cp.kubeconfig}",
                f"--root-dir={kdir / 'root'}",
                f"--cert-dir={kdir / 'pki'}",
                f"--node-ip={NODE_IP}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
        )

        def ready() -> bool:
            node = self.cp.request(f"/api/v1/nodes/{NODE_NAME}")
            assert isinstance(node, dict)
            conds = node.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        _wait("kubelet (node Ready)", ready, 120, self.check_alive)
        with contextlib.suppress(Exception):
            self.cp.request(
                f"/api/v1/nodes/{NODE_NAME}",
                "PATCH",
                {"spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}},
            )

    def _kube_proxy(self) -> None:
        cfg = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.cp.kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
            "detectLocalMode": "ClusterCIDR",
        }
        path = STATE_DIR / "kube-proxy.json"
        path.write_text(json.dumps(cfg, indent=1))
        self._spawn("kube-proxy", [str(self.parts.bins["kube-proxy"]), f"--config={path}", "--v=1"])

        def synced() -> bool:  # the first full sync writes the NodePorts rule last
            out = _run("iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES", check=False).stdout
            return "KUBE-NODEPORTS" in out

        _wait("kube-proxy (service rules)", synced, 60, self.check_alive)

    def _api_for_pods(self) -> None:
        """Pods reach the API server (which listens on 127.0.0.1) as in any cluster: through
        the ``kubernetes`` Service (10.96.0.1:443, in its certificate), whose endpoint is a
        TCP forwarder on the node address to the loopback listener."""
        api_port = int(self.cp.server.rsplit(":", 1)[1])
        self._spawn(
            "api-forwarder",
            [sys.executable, "-c", _FORWARDER, NODE_IP, str(API_NODE_PORT), str(api_port)],
        )
        self.cp.request(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            "POST",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes-node",
                    "namespace": "default",
                    "labels": {
                        "kubernetes.io/service-name": "kubernetes",
                        "endpointslice.kubernetes.io/managed-by": "byollm-realnode",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": API_NODE_PORT, "protocol": "TCP"}],
            },
        )

        def routed() -> bool:
            out = _run("iptables", "-w", "-t", "nat", "-S", check=False).stdout
            return f"{NODE_IP}:{API_NODE_PORT}" in out

        _wait("kubernetes Service routed to the API server", routed, 60, self.check_alive)

    def _kube_router(self) -> None:
        self._spawn(
            "kube-router",
            [
                str(self.parts.bins["kube-router"]),
                f"--kubeconfig={self.cp.kubeconfig}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-ipv4=true",
                "--enable-ipv6=false",
                "--enable-pod-egress=false",
                f"--hostname-override={NODE_NAME}",
                f"--health-port={free_port()}",
                "--metrics-port=0",
                "--iptables-sync-period=30s",
                "--v=1",
            ],
        )

        def synced() -> bool:
            out = _run("iptables", "-w", "-S", "FORWARD", check=False).stdout
            return "KUBE-ROUTER-FORWARD" in out

        _wait("kube-router (firewall chains)", synced, 60, self.check_alive)

    def _coredns(self) -> None:
        """CoreDNS as a pod of the pod network (so NetworkPolicies' DNS rules select it),
        reading the API through the kubernetes Service; it answers cluster names only."""
        corefile = (
            ".:53 {\n  errors\n  ready :8181\n"
            "  kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
            "    fallthrough in-addr.arpa ip6.arpa\n  }\n"
            "  cache 5\n}\n"
        )
        ns = "kube-system"
        rbac_api = "/apis/rbac.authorization.k8s.io/v1"
        docs: list[tuple[str, dict[str, Any]]] = [
            (
                f"/api/v1/namespaces/{ns}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns"}},
            ),
            (
                f"{rbac_api}/clusterroles",
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "byollm-realnode:coredns"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["services", "namespaces", "endpoints", "pods"],
                            "verbs": ["list", "watch"],
                        },
                        {
                            "apiGroups": ["discovery.k8s.io"],
                            "resources": ["endpointslices"],
                            "verbs": ["list", "watch"],
                        },
                    ],
                },
            ),
            (
                f"{rbac_api}/clusterrolebindings",
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "byollm-realnode:coredns"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "byollm-realnode:coredns",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
                },
            ),
            (
                f"/api/v1/namespaces/{ns}/configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "coredns", "namespace": ns},
                    "data": {"Corefile": corefile},
                },
            ),
            (
                f"/api/v1/namespaces/{ns}/services",
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kube-dns",
                        "namespace": ns,
                        "labels": {"k8s-app": "kube-dns"},
                    },
                    "spec": {
                        "clusterIP": DNS_IP,
                        "selector": {"k8s-app": "kube-dns"},
                        "ports": [
                            {"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                        ],
                    },
                },
            ),
            (
                f"/api/v1/namespaces/{ns}/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": "coredns",
                        "namespace": ns,
                        "labels": {"k8s-app": "kube-dns"},
                    },
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "nodeName": NODE_NAME,
                        "containers": [
                            {
                                "name": "coredns",
                                "image": self.image("coredns"),
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 1,
                                },
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            ),
        ]
        for path, body in docs:
            self.cp.request(path, "POST", body)

        def ready() -> bool:
            pod = self.cp.request(f"/api/v1/namespaces/{ns}/pods/coredns")
            assert isinstance(pod, dict)
            conds = pod.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        _wait("CoreDNS pod Ready", ready, 90, self.check_alive)

    # --- inspection helpers for tests -------------------------------------------------------
    def container_pid(self, container_id: str) -> int:
        """Host PID of a running container's first process (from ``status.containerStatuses``)."""
        cid = container_id.split("://", 1)[-1]
        out = self.ctr("tasks", "ls")
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise LookupError(f"no running task {cid}")

    def netns_list(self) -> list[str]:
        return (
            [str(p) for p in Path("/run/netns").glob("cni-*")]
            if Path("/run/netns").is_dir()
            else []
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m byollm_dev.realnode``: a control plane and a real node on this
    machine, until Ctrl-C; prints the kubeconfig and the images to use."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if os.geteuid() != 0:
        print("realnode: needs root (containerd, kubelet, iptables)", file=sys.stderr)
        return 2
    try:
        parts = ensure_parts(progress=sys.stderr)
        cp = controlplane.start(nodes=0, progress=sys.stderr)
    except (RealNodeUnavailable, controlplane.ControlPlaneUnavailable) as exc:
        print(f"realnode: {exc}", file=sys.stderr)
        return 1
    try:
        node = start(cp, cp.log_dir / "node", progress=sys.stderr, parts=parts)
    except BaseException:
        cp.stop()
        raise
    try:
        print(
            f"real node {NODE_NAME} Ready in {node.startup_seconds:.1f}s\n"
            f"  export KUBECONFIG={cp.kubeconfig}\n"
            f"  router image:   {node.image('router')}\n"
            f"  operator image: {node.image('operator')}\n"
            f"  helm install byollm charts/byollm -n byollm-system --create-namespace \\\n"
            f"    --set image.repository={node.image('operator').rsplit(':', 1)[0]} "
            f"--set image.tag={node.image('operator').rsplit(':', 1)[1]} "
            f"--set image.pullPolicy=Never \\\n"
            f"    --set router.image.repository={node.image('router').rsplit(':', 1)[0]} "
            f"--set router.image.tag={node.image('router').rsplit(':', 1)[1]} "
            f"--set router.image.pullPolicy=Never\n"
            f"  logs: {node.log_dir}; Ctrl-C stops and removes everything",
            flush=True,
        )
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
        cp.stop()
    return 0


def _acquire_lock() -> IO[str]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    f = open(LOCK_FILE, "w")  # noqa: SIM115 - held for the node's life
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise RealNodeUnavailable(
            f"another real node runs on this machine ({LOCK_FILE} is locked)"
        ) from None
    return f


def start(
    cp: ControlPlane, log_dir: Path, progress: IO[str] | None = None, parts: Parts | None = None
) -> RealNode:
    """Build (first time only) and start a node registered with ``cp``."""
    parts = parts or ensure_parts(progress)
    lock = _acquire_lock()
    cleanup_leftovers()
    node = RealNode(cp=cp, parts=parts, log_dir=log_dir, lock=lock)
    t0 = time.monotonic()
    try:
        node._start()
    except BaseException:
        node.stop()
        raise
    node.startup_seconds = time.monotonic() - t0
    return node


@contextlib.contextmanager
def running(cp: ControlPlane, log_dir: Path) -> Iterator[RealNode]:
    node = start(cp, log_dir)
    try:
        yield node
    finally:
        node.stop()


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = [
    "RealNode",
    "RealNodeUnavailable",
    "cleanup_leftovers",
    "ensure_parts",
    "start",
]
