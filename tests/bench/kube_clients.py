"""Kubernetes client comparison for the operator's Kubernetes layer (docs/kube-client.md).

    python tests/bench/kube_clients.py [--reconciles 300] [--objects 1000] [--out FILE]

Starts a local control plane (``byollm_dev.controlplane``), creates the objects, then runs
each candidate in a fresh Python process (so its RSS is its own) against the same API
server, with the same raw-JSON requests the operator makes:

* a reconcile-shaped unit of work per object: 1 GET, 4 server-side applies with
  ``dryRun=All`` (the dry-run comparison), 1 merge patch (the status write), 6 at a time
  (the operator's default worker count);
* memory: one paged list (500 a page) of 1,000 ConfigMaps, held as dicts.

Figures per candidate: client CPU (user+sys of its process) per reconcile, wall time,
RSS after import, RSS with the 1,000 objects held. The API server's own CPU is not
counted (it is the same for every candidate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

NS = "kube-bench"
WORKERS = 6
CANDIDATES = (
    "kubernetes-sync",
    "kubernetes_asyncio",
    "kubernetes_asyncio-session",
    "kr8s",
    "httpx",
)

Request = Callable[[str, str, Any, list[tuple[str, str]], str], Awaitable[dict[str, Any]]]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _data(i: int) -> dict[str, str]:
    return {f"k{j}": f"value-{i}-{j}-" + "x" * 180 for j in range(10)}


def _cm(name: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": {"bench": "kube"}},
        "data": _data(i),
    }


def _path(name: str | None = None) -> str:
    p = f"/api/v1/namespaces/{NS}/configmaps"
    return f"{p}/{name}" if name else p


APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


async def _reconcile(req: Request, i: int, n: int) -> None:
    await req("GET", _path(f"obj-{i}"), None, [], "application/json")
    for k in range(4):
        q = [("fieldManager", "bench"), ("force", "true"), ("dryRun", "All")]
        await req("PATCH", _path(f"obj-{i}-c{k}"), _cm(f"obj-{i}-c{k}", i), q, APPLY)
    patch = {"metadata": {"annotations": {"bench/seen": str(n)}}}
    await req("PATCH", _path(f"obj-{i}"), patch, [("fieldManager", "bench")], MERGE)


async def _list_all(req: Request) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cont = ""
    while True:
        q = [("limit", "500"), ("labelSelector", "bench=list")]
        if cont:
            q.append(("continue", cont))
        page = await req("GET", _path(), None, q, "application/json")
        items.extend(page.get("items", []))
        cont = (page.get("metadata") or {}).get("continue") or ""
        if not cont:
            return items


# --- candidates (each in its own process) -------------------------------------------------


async def _async_candidate(name: str, kubeconfig: str) -> tuple[Request, Callable[[], Any]]:
    if name == "kubernetes_asyncio":
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = WORKERS + 2
        api = client.ApiClient(cfg)

        async def req(m: str, p: str, body: Any, q: list[tuple[str, str]], ct: str) -> Any:
            headers = {"Accept": "application/json", "Content-Type": ct}
            resp = await api.call_api(
                p, m, query_params=q, header_params=headers, body=body,
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=30,
            )  # fmt: skip
            try:
                return json.loads(await resp.read())
            finally:
                resp.release()

        return req, api.close
    if name == "kubernetes_asyncio-session":
        # its configuration, TLS context and auth, but the aiohttp session called directly
        # (no call_api: no sanitize/parameter passes over the body)
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = WORKERS + 2
        api = client.ApiClient(cfg)
        session = api.rest_client.pool_manager
        auth = (await cfg.auth_settings())["BearerToken"]["value"]

        async def req(m: str, p: str, body: Any, q: list[tuple[str, str]], ct: str) -> Any:
            headers = {"Accept": "application/json", "Content-Type": ct, "authorization": auth}
            async with session.request(
                m, cfg.host + p, params=q, headers=headers,
                data=None if body is None else json.dumps(body),
            ) as resp:  # fmt: skip
                return json.loads(await resp.read())

        return req, api.close
    if name == "kr8s":
        import kr8s.asyncio

        kapi = await kr8s.asyncio.api(kubeconfig=kubeconfig)

        async def req(m: str, p: str, body: Any, q: list[tuple[str, str]], ct: str) -> Any:
            base, _, rest = p[1:].partition("/")
            async with kapi.call_api(
                m, version="", base=f"/{base}", url=rest, params=q,
                content=None if body is None else json.dumps(body),
                headers={"Content-Type": ct, "Accept": "application/json"},
            ) as resp:  # fmt: skip
                return resp.json()

        async def close() -> None:
            if kapi._session is not None:
                await kapi._session.aclose()

        return req, close
    if name == "httpx":
        import base64
        import ssl

        import httpx
        import yaml

        kc = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = kc["clusters"][0]["cluster"]
        user = kc["users"][0]["user"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        ctx = ssl.create_default_context(cadata=ca)
        http = httpx.AsyncClient(
            base_url=cluster["server"],
            verify=ctx,
            headers={"Authorization": f"Bearer {user['token']}"},
            limits=httpx.Limits(max_connections=WORKERS + 2),
            timeout=30,
        )

        async def req(m: str, p: str, body: Any, q: list[tuple[str, str]], ct: str) -> Any:
            resp = await http.request(
                m, p, params=q, content=None if body is None else json.dumps(body),
                headers={"Content-Type": ct, "Accept": "application/json"},
            )  # fmt: skip
            resp.raise_for_status()
            return resp.json()

        return req, http.aclose
    raise SystemExit(f"unknown candidate {name}")


def _sync_candidate(kubeconfig: str) -> tuple[Request, Callable[[], Any]]:
    """Today's layer: the official client's ApiClient.param_serialize/call_api, called from
    a pool of threads (the operator's worker threads)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = WORKERS + 2
    pool = ThreadPoolExecutor(WORKERS)

    def call(m: str, p: str, body: Any, q: list[tuple[str, str]], ct: str) -> Any:
        hdrs = {"Accept": "application/json", "Content-Type": ct}
        mm, url, h, data, _ = api.param_serialize(
            method=m, resource_path=p, query_params=q, header_params=hdrs, body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        resp = api.call_api(mm, url, header_params=h, body=data, _request_timeout=30)
        resp.read()
        return json.loads(resp.data)

    async def req(m: str, p: str, body: Any, q: list[tuple[str, str]], ct: str) -> Any:
        # run the whole request in a worker thread, as the threaded reconcile did
        return await asyncio.get_running_loop().run_in_executor(pool, call, m, p, body, q, ct)

    def close() -> None:
        pool.shutdown()
        api.close()

    return req, close


async def _child(name: str, kubeconfig: str, reconciles: int) -> dict[str, Any]:
    rss_start = _rss_mb()
    if name == "kubernetes-sync":
        req, close = _sync_candidate(kubeconfig)
    else:
        req, close = await _async_candidate(name, kubeconfig)
    rss_import = _rss_mb()
    sem = asyncio.Semaphore(WORKERS)

    async def one(i: int, n: int) -> None:
        async with sem:
            await _reconcile(req, i, n)

    await asyncio.gather(*(one(i, 0) for i in range(min(30, reconciles))))  # warm up
    t0, c0 = time.monotonic(), time.process_time()
    await asyncio.gather(*(one(i, time.time_ns()) for i in range(reconciles)))
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    rss_before_list = _rss_mb()
    held = await _list_all(req)
    rss_held = _rss_mb()
    out = {
        "candidate": name,
        "reconciles": reconciles,
        "cpu_ms_per_reconcile": round(1000 * cpu / reconciles, 2),
        "wall_s": round(wall, 2),
        "rss_start_mb": rss_start,
        "rss_after_import_mb": rss_import,
        "rss_before_list_mb": rss_before_list,
        "rss_1000_held_mb": rss_held,
        "listed": len(held),
    }
    res = close()
    if asyncio.iscoroutine(res):
        await res
    return out


# --- the harness --------------------------------------------------------------------------


def _setup(kubeconfig: Path, reconciles: int, objects: int) -> None:
    from kubernetes import config

    from byollm.kube import Kube

    kube = Kube(config.new_client_from_config(config_file=str(kubeconfig)), "bench")
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    with ThreadPoolExecutor(8) as pool:
        names = [f"obj-{i}" for i in range(reconciles)]
        names += [f"obj-{i}-c{k}" for i in range(reconciles) for k in range(4)]
        list(pool.map(lambda n: kube.apply(_cm(n, int(n.split("-")[1]))), names))
        listed = [{**_cm(f"list-{i}", i)} for i in range(objects)]
        for m in listed:
            m["metadata"]["labels"] = {"bench": "list"}
        list(pool.map(kube.apply, listed))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reconciles", type=int, default=300)
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("build/bench/kube_clients.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = asyncio.run(_child(args.child, args.kubeconfig, args.reconciles))
        print(json.dumps(res))
        return 0

    from byollm_dev import controlplane

    cp = controlplane.start(progress=sys.stderr)
    results: list[dict[str, Any]] = []
    try:
        _setup(cp.kubeconfig, args.reconciles, args.objects)
        for rep in range(args.repeat):
            for name in args.candidates.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name,
                     "--kubeconfig", str(cp.kubeconfig),
                     "--reconciles", str(args.reconciles)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                res = json.loads(out.stdout.strip().splitlines()[-1])
                res["round"] = rep
                print(json.dumps(res), file=sys.stderr)
                results.append(res)
    finally:
        cp.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
