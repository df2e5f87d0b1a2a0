"""Router data-plane benchmark: byollm router vs direct, the Go and Python floors, LiteLLM.

    python tests/bench/router_bench.py [--short] [--litellm PATH] [--out FILE]

Upstream: the stub provider (``tests/stubs/provider.py``) at a fixed latency (0 and 50 ms),
answering non-streaming JSON or a 200-chunk SSE stream. The same load goes to four targets:

* ``direct``  — the stub itself (the reference every ratio is taken against);
* ``goproxy`` — Go's ``net/http/httputil.ReverseProxy`` (``goproxy/``, one core): the
  compiled floor;
* ``bare``    — ``passthrough.py``: uvicorn + httpx forwarding bytes, nothing else (the
  Python floor);
* ``byollm``  — ``byollm-router`` in BYO mode aimed at the stub;
* ``litellm`` — LiteLLM proxy (separate venv, ``--litellm``) with one model on the stub.

Per target and scenario: latency at concurrency 1 (p50/p99, so "added latency" is the
router's own cost, not queueing), throughput at concurrency C (requests/s), time to first
SSE chunk (sequential streaming requests), CPU per request (from /proc of the target's
process tree), its RSS when just started, idle after use and peak under load, and its start
time (spawn to first HTTP answer). Load comes from the Go load generator (``goproxy/``,
built once with the machine's Go) when Go is installed, else ``wrk``, else a small built-in
asyncio client (slower: its figures are marked). Everything runs on 127.0.0.1,
bounded in time; results go to ``build/bench/router.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    RESULTS_DIR,
    ROOT,
    PeakRss,
    Service,
    benchgo,
    free_port,
    http_ready_s,
    machine_load,
    percentile,
    tree_cpu_s,
    tree_rss_mb,
    wait_port,
    write_json,
)

STUB = ROOT / "tests" / "stubs" / "provider.py"
PASSTHROUGH = Path(__file__).with_name("passthrough.py")
TOKEN = "bench-router-token-0123456789abcdef"
LITELLM_KEY = "sk-bench-litellm-master-key"
CHUNKS = 200
PROMPT = "Say hello in one short sentence."

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"errors":%%d,"non2xx":%%d,' ..
    '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"mean_us":%%f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


@dataclass
class Plan:
    """Durations and counts; ``--short`` shrinks everything for the CI smoke run."""

    latencies_ms: tuple[int, ...]
    streams: tuple[bool, ...]
    warm_s: int
    lat_s: int
    thr_s: int
    ttft_n: int
    conc: dict[int, int]  # upstream latency ms -> connections for the throughput phase

    @classmethod
    def full(cls) -> Plan:
        return cls((0, 50), (False, True), 1, 5, 6, 150, {0: 32, 50: 128})

    @classmethod
    def short(cls) -> Plan:
        return cls((0,), (False, True), 1, 1, 1, 10, {0: 16})


def body(stream: bool) -> bytes:
    msg = {"role": "user", "content": PROMPT}
    return json.dumps({"model": "stub-model", "messages": [msg], "stream": stream}).encode()


# --- load generation ----------------------------------------------------------------------


def wrk_run(port: int, token: str, stream: bool, conns: int, seconds: int) -> dict[str, Any]:
    """One wrk run (1 thread, so the target keeps the other core); its JSON summary."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % {"body": body(stream).decode(), "token": token})
        script = f.name
    try:
        proc = subprocess.run(
            [
                *("wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", script),
                f"http://127.0.0.1:{port}/v1/chat/completions",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
    finally:
        os.unlink(script)
    m = re.search(r"WRKJSON (\{.*\})", proc.stdout)
    if not m:
        raise RuntimeError(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    out: dict[str, Any] = json.loads(m.group(1))
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    return out


async def _py_load(
    port: int, token: str, stream: bool, conns: int, seconds: float
) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    payload = body(stream)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    t_end = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/chat/completions", content=payload, headers=headers)
                    if r.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        elapsed = time.perf_counter() - t0
    us = [x * 1e6 for x in lat]
    return {
        "requests": len(lat),
        "duration_us": int(elapsed * 1e6),
        "errors": errors,
        "non2xx": 0,
        "p50_us": percentile(us, 50),
        "p90_us": percentile(us, 90),
        "p99_us": percentile(us, 99),
        "mean_us": sum(us) / len(us) if us else float("nan"),
        "rps": len(lat) / elapsed,
    }


def go_load(
    exe: Path, port: int, token: str, stream: bool, conns: int, seconds: int
) -> dict[str, Any]:
    """One run of the Go load generator (one core, like wrk -t1); its JSON summary."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body(stream))
        payload = f.name
    try:
        proc = subprocess.run(
            [
                *(str(exe), "load", "-c", str(conns), "-d", str(seconds), "-body", payload),
                *("-token", token, "-url", f"http://127.0.0.1:{port}/v1/chat/completions"),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        os.unlink(payload)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr[-500:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    return out


def loadgen_name() -> str:
    if benchgo() is not None:
        return "Go net/http (1 core)"
    return "wrk (1 thread)" if shutil.which("wrk") else "python asyncio+httpx"


def load(port: int, token: str, stream: bool, conns: int, seconds: int) -> dict[str, Any]:
    exe = benchgo()
    if exe is not None:
        return go_load(exe, port, token, stream, conns, seconds)
    if shutil.which("wrk"):
        return wrk_run(port, token, stream, conns, seconds)
    return asyncio.run(_py_load(port, token, stream, conns, seconds))


async def ttft(port: int, token: str, n: int) -> dict[str, Any]:
    """Sequential streaming requests on fresh connections: time to the first SSE data."""
    payload = body(True)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    firsts: list[float] = []
    totals: list[float] = []
    incomplete = 0
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = time.perf_counter()
        writer.write(head + payload)
        buf = b""
        first: float | None = None
        while True:
            data = await asyncio.wait_for(reader.read(65536), 30)
            if not data:
                break
            buf += data
            if first is None:
                i = buf.find(b"\r\n\r\n")
                if i >= 0 and b"data:" in buf[i:]:
                    first = time.perf_counter() - t0
        totals.append(time.perf_counter() - t0)
        writer.close()
        if first is None or b"[DONE]" not in buf:
            incomplete += 1
        else:
            firsts.append(first)
    ms = [x * 1e3 for x in firsts]
    return {
        "n": n,
        "incomplete": incomplete,
        "ttft_p50_ms": percentile(ms, 50),
        "ttft_p99_ms": percentile(ms, 99),
        "total_p50_ms": percentile([x * 1e3 for x in totals], 50),
    }


# --- targets ------------------------------------------------------------------------------


def start_stub(latency_ms: int, logs: Path) -> tuple[Service, int]:
    port = free_port()
    svc = Service(
        f"stub-{latency_ms}ms",
        [
            *(sys.executable, str(STUB), "--port", str(port)),
            *("--latency-ms", str(latency_ms), "--chunks", str(CHUNKS)),
        ],
        logs / f"stub-{latency_ms}ms.log",
    ).start()
    wait_port(port, 20, svc.proc)
    return svc, port


def start_target(
    name: str,
    stub_port: int,
    logs: Path,
    litellm: Path | None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Service, int, str, float]:
    """Start one proxy aimed at the stub; returns (service, port, bearer token, seconds
    from spawn to its first HTTP answer on /healthz)."""
    port = free_port()
    upstream = f"http://127.0.0.1:{stub_port}"
    base_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    base_env |= extra_env or {}
    if name == "goproxy":
        exe = benchgo()
        if exe is None:
            raise RuntimeError("no Go toolchain to build the Go floor")
        argv = [str(exe), "proxy", "-listen", f"127.0.0.1:{port}", "-upstream", upstream]
        svc = Service(name, argv, logs / "goproxy.log", env=base_env)
        token, timeout = "any", 20.0
    elif name == "bare":
        argv = [sys.executable, str(PASSTHROUGH), "--port", str(port), "--upstream", upstream]
        svc = Service(name, argv, logs / "bare.log", env=base_env)
        token, timeout = "any", 20.0
    elif name == "byollm":
        env = base_env | {
            "LLM_MODE": "BYO",
            "LLM_PROVIDER": "openai",
            "LLM_BASE_URL": f"{upstream}/v1",
            "LLM_API_KEY": "sk-bench-provider-key",
            "LLM_MODEL": "stub-model",
            "BYOLLM_ROUTER_TOKEN": TOKEN,
            "BYOLLM_TENANT": "bench",
            "BYOLLM_UPSTREAM_ALLOWLIST": "127.0.0.1",
        }
        exe = Path(sys.executable).with_name("byollm-router")
        argv = [str(exe), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        svc = Service(name, argv, logs / "byollm.log", env=env)
        token, timeout = TOKEN, 20.0
    elif name == "litellm":
        assert litellm is not None
        cfg = logs / "litellm.yaml"
        cfg.write_text(
            "model_list:\n"
            "  - model_name: stub-model\n"
            "    litellm_params:\n"
            "      model: openai/stub-model\n"
            f"      api_base: {upstream}/v1\n"
            "      api_key: sk-bench-provider-key\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "  drop_params: true\n"
            "  turn_off_message_logging: true\n"
            "general_settings:\n"
            f"  master_key: {LITELLM_KEY}\n"
        )
        env = base_env | {
            # No egress: the model-cost map ships with the package; any other outbound
            # attempt is sent to a closed loopback port by the proxy variables.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
            "DISABLE_ADMIN_UI": "True",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        argv = [
            *(str(litellm), "--config", str(cfg), "--host", "127.0.0.1"),
            *("--port", str(port), "--num_workers", "1"),
        ]
        svc = Service(name, argv, logs / "litellm.log", env=env)
        token, timeout = LITELLM_KEY, 120.0
    else:
        raise ValueError(name)
    svc.start()
    try:
        assert svc.proc is not None
        start_s = http_ready_s(port, "/healthz", timeout, svc.proc)
    except (RuntimeError, TimeoutError) as e:
        svc.stop()
        raise RuntimeError(f"{name} did not start: {e}\n{svc.tail()}") from None
    return svc, port, token, start_s


def litellm_version(exe: Path) -> str:
    py = exe.with_name("python")
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def measure(
    port: int, token: str, pid: int | None, plan: Plan, latency_ms: int, stream: bool
) -> dict[str, Any]:
    """Warm-up, latency at concurrency 1, throughput at concurrency C, TTFT (streams)."""
    res: dict[str, Any] = {}
    load(port, token, stream, 4, plan.warm_s)
    if pid:
        time.sleep(0.3)
        res["idle_rss_mb"] = tree_rss_mb(pid)  # after use, nothing in flight
    rss = PeakRss(pid) if pid else None
    if rss:
        rss.__enter__()
    try:
        res["c1"] = load(port, token, stream, 1, plan.lat_s)
        cpu0 = tree_cpu_s(pid) if pid else 0.0
        res["load"] = load(port, token, stream, plan.conc[latency_ms], plan.thr_s)
        if pid:
            cpu = tree_cpu_s(pid) - cpu0
            done = res["load"]["requests"]
            res["cpu_us_per_req"] = cpu / done * 1e6 if done else None
        if stream:
            res["ttft"] = asyncio.run(ttft(port, token, plan.ttft_n))
    finally:
        if rss:
            rss.__exit__()
            res["peak_rss_mb"] = rss.peak_mb
    return res


def run(plan: Plan, targets: list[str], litellm: Path | None, logs: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "machine_before": machine_load(),
        "loadgen": loadgen_name(),
        "plan": plan.__dict__,
        "targets": targets,
        "scenarios": [],
    }
    if litellm is not None:
        out["litellm_version"] = litellm_version(litellm)
    for latency_ms in plan.latencies_ms:
        stub, stub_port = start_stub(latency_ms, logs)
        try:
            rows = {s: {"latency_ms": latency_ms, "stream": s, "targets": {}} for s in plan.streams}
            for name in targets:
                started: dict[str, float] = {}
                if name == "direct":
                    svc, port, token, pid = None, stub_port, "any", stub.pid
                else:
                    try:
                        svc, port, token, start_s = start_target(name, stub_port, logs, litellm)
                        started = {"start_s": start_s, "ready_rss_mb": tree_rss_mb(svc.pid)}
                    except RuntimeError as e:
                        for s in plan.streams:
                            rows[s]["targets"][name] = {"error": str(e)[:300]}
                        print(f"!! {name}: {str(e)[:300]}", file=sys.stderr, flush=True)
                        continue
                    pid = svc.pid
                try:
                    for s in plan.streams:
                        t0 = time.monotonic()
                        try:
                            r = started | measure(port, token, pid, plan, latency_ms, s)
                        except Exception as e:
                            r = {"error": f"{type(e).__name__}: {e}"[:300]}
                        rows[s]["targets"][name] = r
                        print(_line(name, latency_ms, s, r, time.monotonic() - t0), flush=True)
                finally:
                    if svc is not None:
                        svc.stop()
            out["scenarios"].extend(rows.values())
        finally:
            stub.stop()
    out["machine_after"] = machine_load()
    return out


def _line(name: str, latency_ms: int, stream: bool, r: dict[str, Any], took: float) -> str:
    kind = "stream" if stream else "json"
    if "error" in r:
        return f"{name:<8} {latency_ms:>3}ms {kind:<6} ERROR {r['error']}"
    s = (
        f"{name:<8} {latency_ms:>3}ms {kind:<6} c1 p50 {r['c1']['p50_us'] / 1e3:7.2f}ms "
        f"p99 {r['c1']['p99_us'] / 1e3:7.2f}ms | {r['load']['rps']:8.0f} req/s "
        f"(errors {r['load']['errors'] + r['load']['non2xx']})"
    )
    if r.get("cpu_us_per_req") is not None:
        s += f" | cpu {r['cpu_us_per_req']:6.0f}us/req rss {r.get('peak_rss_mb', 0):5.0f}MB"
        s += f" idle {r.get('idle_rss_mb', 0):4.0f}MB"
    if r.get("start_s") is not None:
        s += f" | start {r['start_s']:.2f}s"
    if "ttft" in r:
        s += f" | ttft p50 {r['ttft']['ttft_p50_ms']:.2f}ms"
    return s + f" [{took:.0f}s]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="tiny run for CI (no LiteLLM)")
    parser.add_argument("--litellm", type=Path, default=None, help="path to the litellm CLI")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "router.json")
    parser.add_argument("--targets", default="direct,goproxy,bare,byollm,litellm")
    args = parser.parse_args(argv)
    plan = Plan.short() if args.short else Plan.full()
    targets = [t for t in args.targets.split(",") if t]
    litellm = args.litellm
    if "litellm" in targets and (args.short or litellm is None or not litellm.exists()):
        targets.remove("litellm")
        litellm = None
    logs = args.out.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    result = run(plan, targets, litellm, logs)
    result["mode"] = "short" if args.short else "full"
    result["seconds"] = round(time.monotonic() - t0, 1)
    if "litellm" not in targets:
        result["litellm_skipped"] = "short mode" if args.short else "litellm not installed"
    write_json(args.out, result)
    print(f"wrote {args.out} in {result['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
