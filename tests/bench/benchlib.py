"""Shared pieces of the benchmark harness: processes, ports, percentiles, resource samples.

Everything here talks to 127.0.0.1 only. Imported by ``router_bench.py`` and
``operator_bench.py`` (run as scripts, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from byollm_dev.controlplane import free_port as free_port  # re-exported for the scripts
from byollm_dev.controlplane import stop_process

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "build" / "bench"  # build/ is gitignored


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")
        time.sleep(0.05)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Service:
    """A subprocess whose output goes to a log file; stopped with SIGTERM then SIGKILL."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _tree_total(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over a process and its (live) children; NaN when it is gone."""
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += measure(q)
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    return _tree_total(pid, lambda q: q.memory_info().rss) / (1024 * 1024)


def _cpu_s(q: psutil.Process) -> float:
    t = q.cpu_times()
    return float(t.user + t.system)


def tree_cpu_s(pid: int) -> float:
    """User+system CPU seconds used so far by a process and its (live) children."""
    return _tree_total(pid, _cpu_s)


class PeakRss:
    """Samples a process tree's RSS in a thread; ``peak_mb`` is the largest sample."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        self.pid = pid
        self.period = period
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = tree_rss_mb(self.pid)
            if rss == rss:  # not NaN
                self.peak_mb = max(self.peak_mb, rss)
            self._stop.wait(self.period)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def stopping(*services: Service) -> Iterator[None]:
    """Stop every started service on exit, newest first."""
    try:
        yield
    finally:
        for s in reversed(services):
            s.stop()


def machine_load() -> dict[str, Any]:
    """What else the machine is doing: load averages and core count (noise context)."""
    la1, la5, la15 = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "load1": round(la1, 2),
        "load5": round(la5, 2),
        "load15": round(la15, 2),
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def poll(what: str, check: Callable[[], bool], timeout: float, period: float = 0.1) -> float:
    """Call ``check`` until true; return the seconds it took. Raises TimeoutError."""
    t0 = time.monotonic()
    while True:
        if check():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(period)


GO_SRC = Path(__file__).with_name("goproxy")
GO_CACHE = Path(os.environ.get("BYOLLM_CACHE", Path.home() / ".cache" / "byollm")) / "bench"


def benchgo() -> Path | None:
    """The Go floor proxy and load generator (``goproxy/``), built once per source version
    into ``~/.cache/byollm/bench`` with the machine's Go; None when there is no Go."""
    import fcntl
    import hashlib
    import shutil

    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None
    )
    if go is None:
        return None
    digest = hashlib.sha256()
    for f in sorted(GO_SRC.glob("*")):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    exe = GO_CACHE / f"benchgo-{digest.hexdigest()[:12]}"
    if exe.exists():
        return exe
    GO_CACHE.mkdir(parents=True, exist_ok=True)
    with (GO_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            tmp = exe.with_suffix(".tmp")
            env = os.environ | {"GOTOOLCHAIN": "local", "GOFLAGS": "-trimpath", "CGO_ENABLED": "0"}
            subprocess.run(
                [go, "build", "-o", str(tmp), "."], cwd=GO_SRC, env=env, check=True, timeout=600
            )
            tmp.rename(exe)
    return exe


def http_ready_s(port: int, path: str, timeout: float, proc: subprocess.Popen[bytes]) -> float:
    """Seconds from now until ``GET path`` on 127.0.0.1:``port`` gets any HTTP answer
    (polled every 5 ms): with the process just spawned, its start time."""
    t0 = time.monotonic()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.settimeout(2)
            s.sendall(request)
            if s.recv(16).startswith(b"HTTP/1."):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"no HTTP answer on 127.0.0.1:{port} after {timeout:.0f}s")
        time.sleep(0.005)
