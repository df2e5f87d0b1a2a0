"""Turn the benchmark results (JSON) into ``docs/benchmarks.md`` and one PNG per plane.

    python tests/bench/report.py --router R.json --operator O.json [--autoroute A.txt]
                                 [--md docs/benchmarks.md] [--png-dir docs]

Plots need matplotlib (installed in ``.venv-bench`` by ``hack/bench.sh``); without it the
Markdown is still written and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

DASH = "\u2013"
TIMES = "\u00d7"
TARGET_ORDER = ("direct", "goproxy", "bare", "byollm", "litellm")
TARGET_LABEL = {
    "direct": "direct (stub)",
    "goproxy": "Go ReverseProxy (floor)",
    "bare": "bare uvicorn+httpx",
    "byollm": "**byollm router**",
    "litellm": "LiteLLM proxy",
}


def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:.{nd}f}"


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _added(v_us: float, ref_us: float) -> str:
    """Added ms; a negative difference is a spike in the reference run, not a gain."""
    d = (v_us - ref_us) / 1e3
    return _f(d) if d >= 0 else "n/a (ref. spike)"


def router_rows(r: dict[str, Any]) -> list[str]:
    out = [
        f"| upstream | target | req/s | {TIMES} direct | p50 ms (c=1) | p99 ms (c=1) "
        "| added p50 / p99 ms | TTFT p50 ms | TTFT added ms | CPU µs/req | idle RSS MB "
        "| peak RSS MB | start s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in r.get("scenarios", []):
        kind = "200-chunk SSE" if sc["stream"] else "JSON"
        up = f"{sc['latency_ms']} ms, {kind}"
        tg = sc["targets"]
        direct = tg.get("direct", {})
        d_rps = _get(direct, "load", "rps")
        d50 = _get(direct, "c1", "p50_us")
        d99 = _get(direct, "c1", "p99_us")
        d_ttft = _get(direct, "ttft", "ttft_p50_ms")
        for name in TARGET_ORDER:
            t = tg.get(name)
            if t is None:
                continue
            if "error" in t:
                err = t["error"][:80].replace("|", "/")
                out.append(f"| {up} | {TARGET_LABEL[name]} | failed: {err} |" + " |" * 10)
                continue
            rps = _get(t, "load", "rps")
            p50, p99 = _get(t, "c1", "p50_us"), _get(t, "c1", "p99_us")
            ttft = _get(t, "ttft", "ttft_p50_ms")
            ratio = rps / d_rps if rps and d_rps else None
            added = (
                f"{_added(p50, d50)} / {_added(p99, d99)}"
                if name != "direct" and None not in (p50, d50, p99, d99)
                else DASH
            )
            t_add = _f(ttft - d_ttft) if name != "direct" and None not in (ttft, d_ttft) else DASH
            out.append(
                f"| {up} | {TARGET_LABEL[name]} | {_f(rps, 0)} | {_f(ratio)} | "
                f"{_f(p50 / 1e3 if p50 is not None else None)} | "
                f"{_f(p99 / 1e3 if p99 is not None else None)} | {added} | {_f(ttft)} | "
                f"{t_add} | {_f(t.get('cpu_us_per_req'), 0)} | {_f(t.get('idle_rss_mb'), 0)} | "
                f"{_f(t.get('peak_rss_mb'), 0)} | {_f(t.get('start_s'))} |"
            )
    return out


def router_summary(r: dict[str, Any]) -> dict[str, Any]:
    """Headline figures from the 0 ms JSON scenario (the one that isolates proxy cost)."""
    out: dict[str, Any] = {}
    for sc in r.get("scenarios", []):
        if sc["latency_ms"] != 0 or sc["stream"]:
            continue
        tg: dict[str, Any] = sc["targets"]

        def rps(name: str, tg: dict[str, Any] = tg) -> float | None:
            return _get(tg.get(name, {}), "load", "rps")

        def cpu(name: str, tg: dict[str, Any] = tg) -> float | None:
            return _get(tg.get(name, {}), "cpu_us_per_req")

        b50 = _get(tg.get("byollm", {}), "c1", "p50_us")
        d50 = _get(tg.get("direct", {}), "c1", "p50_us")
        g50 = _get(tg.get("goproxy", {}), "c1", "p50_us")
        if b50 is not None and d50 is not None:
            out["added_p50_ms"] = (b50 - d50) / 1e3
            if g50 is not None and g50 > d50:
                out["added_vs_go"] = (b50 - d50) / (g50 - d50)
        if cpu("byollm") and cpu("goproxy"):
            out["cpu_vs_go"] = cpu("byollm") / cpu("goproxy")
        out["idle_rss_mb"] = _get(tg.get("byollm", {}), "idle_rss_mb")
        out["start_s"] = _get(tg.get("byollm", {}), "start_s")
        if rps("byollm") and rps("litellm"):
            out["vs_litellm"] = rps("byollm") / rps("litellm")
        if rps("byollm") and rps("bare"):
            out["vs_bare"] = rps("byollm") / rps("bare")
        if cpu("byollm") and cpu("litellm"):
            out["cpu_vs_litellm"] = cpu("litellm") / cpu("byollm")
        if cpu("byollm") and cpu("bare"):
            out["cpu_vs_bare"] = cpu("bare") / cpu("byollm")
        out["rss_mb"] = _get(tg.get("byollm", {}), "peak_rss_mb")
    for sc in r.get("scenarios", []):
        if sc["latency_ms"] == 0 and sc["stream"]:
            tg = sc["targets"]
            b = _get(tg.get("byollm", {}), "ttft", "ttft_p50_ms")
            d = _get(tg.get("direct", {}), "ttft", "ttft_p50_ms")
            if b is not None and d is not None:
                out["ttft_added_ms"] = b - d
    return out


def operator_rows(o: dict[str, Any]) -> list[str]:
    out = [
        "| LLMConfigs | all Ready s | create→reconciled p50 / p99 s | create→Ready p50 / p99 s "
        "| change→new ReplicaSet p50 / p99 s | change→Ready p50 / p99 s | writes / object "
        "| idle writes (window, resync passes seen) | Lease renewals /min | idle CPU % "
        "| create CPU s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in o.get("sizes", []):

        def pp(key: str, s: dict[str, Any] = s) -> str:
            return f"{_f(_get(s, key, 'p50'))} / {_f(_get(s, key, 'p99'))}"

        idle = s["idle"]
        ready = _f(s.get("all_ready_s"), 1)
        if "all_ready_s" not in s and "ready_count" in s:  # stopped at all reconciled
            ready = f"{DASH} ({s['ready_count']:,} Ready when all were reconciled)"
        out.append(
            f"| {s['n']} | {ready} | {pp('create_to_synced_s')} | "
            f"{pp('create_to_ready_s')} | {pp('change_to_new_rs_s')} | {pp('change_to_ready_s')} | "
            f"{_f(s['writes_per_object'], 1)} | **{idle['writes']}** "
            f"({_f(idle['window_s'], 0)} s, {idle.get('resync_passes', '?')}) | "
            f"{_f(idle['lease_writes_per_min'], 0)} | "
            f"{_f(idle['cpu_pct'], 1)} | {_f(s['create_cpu_s'], 1)} | {_f(s['rss_peak_mb'], 0)} |"
        )
    return out


def floor_lines(o: dict[str, Any]) -> list[str]:
    """The cluster's own floor at each size (``operator_bench.py --floor``) beside the
    operator's figures: how much of all-Ready and of a change is the operator's."""
    out = []
    for f in o.get("floor", []):
        x = f.get("operator", {})  # the operator's figures of the floor's own run
        ready, floor_ready = x.get("all_ready_s"), f.get("all_ready_s")
        ratio = f" ({ready / floor_ready:.2f}{TIMES} the floor)" if ready and floor_ready else ""
        p99, floor_p99 = _get(x, "change_to_new_rs_s", "p99"), _get(f, "change_to_new_rs_s", "p99")
        out.append(
            f"- Floor at N={f['n']} (no operator: the harness applies each tenant's children "
            f"itself, one apply each, and each change as two applies): all Ready "
            f"{_f(floor_ready, 1)} s against the operator's {_f(ready, 1)} s{ratio}; change → "
            f"new ReplicaSet p50 / p99 {_f(_get(f, 'change_to_new_rs_s', 'p50'))} / "
            f"{_f(floor_p99)} s against {_f(_get(x, 'change_to_new_rs_s', 'p50'))} / {_f(p99)} s."
        )
    return out


def targets(r: dict[str, Any] | None, o: dict[str, Any] | None) -> list[str]:
    rows = ["| target | goal | measured | met |", "|---|---|---|---|"]

    def row(name: str, goal: str, value: float | None, ok: bool | None, fmt: str) -> None:
        shown = "not measured" if value is None else fmt.format(value)
        met = DASH if ok is None or value is None else ("yes" if ok else "**no**")
        rows.append(f"| {name} | {goal} | {shown} | {met} |")

    s = router_summary(r or {})

    def router(
        name: str, goal: str, key: str, fmt: str, most: float = math.inf, least: float = -math.inf
    ) -> None:
        """A router target: the summary's ``key`` between ``least`` and ``most``."""
        v = s.get(key)
        row(name, goal, v, v is not None and least <= v <= most, fmt)

    x_times = "{:.1f}" + TIMES
    router("router p50 added latency", "≤ 0.5 ms", "added_p50_ms", "{:.2f} ms", 0.5)
    router("router CPU/request vs Go proxy", f"≤ 3{TIMES}", "cpu_vs_go", x_times, 3)
    router("router added p50 vs Go proxy's", f"≤ 1.5{TIMES}", "added_vs_go", x_times, 1.5)
    router("streaming TTFT added", "≤ 0.3 ms", "ttft_added_ms", "{:.2f} ms", 0.3)
    router("router idle RSS", "≤ 40 MB (stretch 30)", "idle_rss_mb", "{:.0f} MB", 40)
    router("router start → /healthz", "≤ 0.5 s", "start_s", "{:.2f} s", 0.5)
    router("router throughput vs LiteLLM", f"≥ 5{TIMES}", "vs_litellm", x_times, least=5)
    router("router throughput vs bare floor", "≥ 50 %", "vs_bare", "{:.0%}", least=0.5)
    sizes = {x["n"]: x for x in (o or {}).get("sizes", [])}
    floors = {x["n"]: x for x in (o or {}).get("floor", [])}
    # Operator targets per size: (all Ready s, change -> new ReplicaSet p99 s, RSS MB,
    # idle CPU %); at 10,000 "all reconciled" replaces "all Ready" (kwok on 2 cores).
    goals = {1000: (60.0, 2.0, 150.0, 5.0), 10000: (None, 5.0, 400.0, 10.0)}
    for n, (ready, p99, rss, cpu) in goals.items():
        x = sizes.get(n) or {}
        label = f"{n:,}"

        def at_most(name: str, limit: float, unit: str, v: float | None, fmt: str) -> None:
            row(name, f"≤ {limit:g} {unit}", v, v is not None and v <= limit, fmt + " " + unit)

        if ready is not None:
            at_most(f"operator: {label} all Ready", ready, "s", x.get("all_ready_s"), "{:.1f}")
            floor = floors.get(n, {}).get("all_ready_s")
            if floor:
                v = floors[n].get("operator", {}).get("all_ready_s")  # the same run's
                row(
                    f"&nbsp;&nbsp;the cluster's own floor at {label} (no operator): all Ready, "
                    "and the operator's in the same run",
                    DASH,
                    floor,
                    None,
                    "{:.1f} s" + (f" (the operator: {v / floor:.2f}{TIMES})" if v else ""),
                )
        else:
            v = x.get("all_reconciled_s", x.get("all_synced_s"))
            row(f"operator: {label} all reconciled", "all", v, v is not None, "{:.1f} s")
        v = _get(x, "change_to_new_rs_s", "p99") if x else None
        at_most(f"operator: change → new ReplicaSet p99 at {label}", p99, "s", v, "{:.2f}")
        at_most(f"operator RSS at {label}", rss, "MB", x.get("rss_peak_mb"), "{:.0f}")
        v = x["idle"]["writes"] if x else None
        row(f"operator idle writes at {label}", "0", v, v == 0, "{:.0f}")
        v = x["idle"]["cpu_pct"] if x else None
        at_most(f"operator idle CPU at {label}", cpu, "%", v, "{:.1f}")
    return rows


def autoroute_line(text: str | None) -> str | None:
    if not text:
        return None
    m = re.search(r"worst added: (-?\d+\.\d+) µs", text)
    return f"{m.group(1)} µs (target ≤ 200 µs)" if m else None


def plot_router(r: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = r.get("scenarios", [])
    labels = [f"{s['latency_ms']} ms\n{'SSE' if s['stream'] else 'JSON'}" for s in scen]
    names = [n for n in TARGET_ORDER if any(n in s["targets"] for s in scen)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    width = 0.8 / max(1, len(names))
    metrics = (
        ("requests/s (concurrency C, log)", lambda t: _get(t, "load", "rps"), True),
        ("added p50 latency ms (c=1, log)", None, True),
        ("CPU µs per request (log)", lambda t: t.get("cpu_us_per_req"), True),
    )
    for ax, (title, fn, log) in zip(axes, metrics, strict=True):
        for i, name in enumerate(names):
            vals = []
            for s in scen:
                t = s["targets"].get(name, {})
                if fn is None:
                    d = _get(s["targets"].get("direct", {}), "c1", "p50_us")
                    v = _get(t, "c1", "p50_us")
                    if name == "direct" or v is None or d is None:
                        vals.append(float("nan"))  # the reference itself: nothing added
                    else:  # log scale: noise can make it <= 0
                        vals.append(max((v - d) / 1e3, 0.01))
                else:
                    vals.append(fn(t) or 0)
            xs = [j + i * width for j in range(len(scen))]
            ax.bar(xs, vals, width, label=name)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(scen))], labels)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"router data plane ({r.get('loadgen', '')}; {r.get('mode', '')} mode)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def plot_operator(o: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = o.get("sizes", [])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for s in sizes:
        raw = s.get("create_to_ready_raw") or []
        if raw:
            ys = [(i + 1) / len(raw) for i in range(len(raw))]
            axes[0].step(raw, ys, where="post", label=f"N={s['n']}")
    axes[0].set_xlabel("seconds from create to Ready (router pod running)")
    axes[0].set_ylabel("fraction of LLMConfigs")
    axes[0].set_title("create → Ready (CDF)")
    axes[0].grid(alpha=0.3)
    axes[0].legend()
    names = ("create_to_synced_s", "change_to_new_rs_s", "change_to_ready_s")
    width = 0.8 / max(1, len(sizes))
    for i, s in enumerate(sizes):
        xs = [j + i * width for j in range(len(names))]
        axes[1].bar(xs, [_get(s, k, "p99") or 0 for k in names], width, label=f"N={s['n']} p99")
        axes[1].scatter(xs, [_get(s, k, "p50") or 0 for k in names], color="black", zorder=3, s=12)
    axes[1].set_xticks(
        [j + width * (len(sizes) - 1) / 2 for j in range(len(names))],
        ["create→reconciled", "change→new RS", "change→Ready"],
    )
    axes[1].axhline(2.0, color="red", lw=0.8, ls="--", label="2 s target")
    axes[1].set_ylabel("seconds (bar p99, dot p50)")
    axes[1].set_title("latencies")
    axes[1].grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"operator on the real control plane with kwok nodes ({o.get('mode', '')} mode)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def render(
    r: dict[str, Any] | None, o: dict[str, Any] | None, auto: str | None, pngs: dict[str, str]
) -> str:
    lines = ["# Benchmarks", ""]
    lines.append(
        "Generated by `hack/bench.sh` (harness in `tests/bench/`). Everything runs on one "
        "2-core machine on 127.0.0.1: load generator, proxies, stub upstream, control plane. "
        "Absolute numbers depend on that machine and on whatever else it was running "
        "(load averages below); ratios and CPU per request are the steadier figures."
    )
    lines.append("")
    lines += ["## Targets", "", *targets(r, o), ""]
    if r:
        m0, m1 = r.get("machine_before", {}), r.get("machine_after", {})
        lines += ["## Router data plane", ""]
        lines.append(
            f"Run {m0.get('time', '?')}, {r.get('mode')} mode, load generator "
            f"{r.get('loadgen')}, load average {m0.get('load1')} → {m1.get('load1')} "
            f"on {m0.get('cores')} cores. LiteLLM: "
            f"{r.get('litellm_version') or r.get('litellm_skipped', 'not run')}."
        )
        lines.append("")
        lines.append(
            "Upstream: the stub provider at a fixed latency, answering JSON or a 200-chunk SSE "
            "stream. *c=1* latency is one connection in a loop (the proxy's own cost, no "
            "queueing); *req/s* uses C connections "
            f"({', '.join(f'{k} ms: {v}' for k, v in r.get('plan', {}).get('conc', {}).items())}"
            "); *TTFT* is time to the first SSE data on sequential requests; *CPU µs/req* is "
            "the proxy process's CPU time over the throughput phase divided by requests "
            "(for *direct*, the stub's own)."
        )
        lines.append("")
        lines += router_rows(r)
        lines.append("")
        if "router" in pngs:
            lines += [f"![router]({pngs['router']})", ""]
    if auto:
        lines += [
            "## Auto-router",
            "",
            f"Rule path added latency (worst case, `tests/bench/autoroute_bench.py`): {auto}.",
            "",
        ]
    if o:
        m0 = o.get("machine_before", {})
        lines += ["## Operator control plane", ""]
        lines.append(
            f"Run {m0.get('time', '?')}, {o.get('mode')} mode, load average {m0.get('load1')}. "
            "Fresh local control plane per size (etcd, kube-apiserver, controller-manager, "
            "scheduler, kwok nodes: 2, 12 at 10,000), the operator as in production (own user + "
            "RBAC, leader election on, credentials probe off). N tenants = a key Secret + a BYO "
            "LLMConfig each, 100 per namespace, created by 8 client threads. *reconciled* = "
            "SecretSynced True at the object's generation (children applied); *Ready* also needs "
            "the router pod running. Changes: the provider model of up to 50 objects, 5 per "
            "second. Idle writes: the operator user's create/update/patch/delete in the API "
            "server's audit log over two resync periods plus the time of a pass, with the passes "
            "the operator logged in that window (dry-run applies are reads; Lease renewals of "
            "leader election are listed apart)."
        )
        lines.append("")
        if o.get("unavailable"):
            lines += [f"Control plane unavailable: {o['unavailable']}", ""]
        lines += operator_rows(o)
        lines.append("")
        lines += floor_lines(o)
        for s in o.get("sizes", []):
            by = s.get("create_writes", {}).get("by_resource", {})
            if by:
                parts = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
                lines.append(f"- N={s['n']}: writes while creating: {parts}.")
        lines.append("")
        if "operator" in pngs:
            lines += [f"![operator]({pngs['operator']})", ""]
    if not pngs:
        lines += ["(plots not drawn: matplotlib is not installed in this Python)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--router", type=Path)
    p.add_argument(
        "--operator", type=Path, nargs="+", help="operator results (sizes of several runs merge)"
    )
    p.add_argument("--autoroute", type=Path)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("--png-dir", type=Path)
    p.add_argument("--extra", type=Path, help="Markdown appended verbatim (analysis notes)")
    a = p.parse_args(argv)

    def load(path: Path | None) -> dict[str, Any] | None:
        return json.loads(path.read_text()) if path and path.exists() else None

    r = load(a.router)
    o: dict[str, Any] | None = None
    for part in filter(None, (load(x) for x in a.operator or [])):
        for f in part.get("floor", []):  # a floor is compared with its own run's operator
            same = [x for x in part.get("sizes", []) if x["n"] == f["n"]]
            f.setdefault("operator", same[0] if same else {})
        if o is None:
            o = part
        else:  # a later run adds its sizes, or replaces a size measured before
            later = {x["n"] for x in part.get("sizes", [])}
            o["sizes"] = [x for x in o.get("sizes", []) if x["n"] not in later]
            o["sizes"] += part.get("sizes", [])
            o["floor"] = [*o.get("floor", []), *part.get("floor", [])]
    auto = autoroute_line(a.autoroute.read_text() if a.autoroute and a.autoroute.exists() else None)
    pngs: dict[str, str] = {}
    png_dir = a.png_dir or a.md.parent
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
    else:
        png_dir.mkdir(parents=True, exist_ok=True)
        if r:
            plot_router(r, png_dir / "bench-router.png")
            pngs["router"] = "bench-router.png"
        if o and o.get("sizes"):
            plot_operator(o, png_dir / "bench-operator.png")
            pngs["operator"] = "bench-operator.png"
    text = render(r, o, auto, pngs)
    if a.extra and a.extra.exists():
        text += "\n" + a.extra.read_text()
    a.md.parent.mkdir(parents=True, exist_ok=True)
    a.md.write_text(text)
    print(f"wrote {a.md}" + (f" and {', '.join(pngs.values())}" if pngs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
