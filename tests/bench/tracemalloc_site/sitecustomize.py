"""Memory analysis hook for the operator benchmark (not product code).

Put this folder on the operator's PYTHONPATH (``BENCH_OPERATOR_PYTHONPATH``) and set
``EXP_TRACEMALLOC_OUT=<file>``: tracemalloc starts with the interpreter and, whenever the
traced memory reaches a new peak (checked every 5 s), the top allocation sites (by line
and by file) are written to that file, so the file ends up describing the peak.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

_OUT = os.environ.get("EXP_TRACEMALLOC_OUT")


def _dump(path: str) -> None:
    best = 0
    while True:
        time.sleep(5.0)
        current, _peak = tracemalloc.get_traced_memory()
        if current <= best * 1.02:
            continue
        best = current
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        lines = [f"traced {current / 2**20:.1f} MB at {time.strftime('%H:%M:%S')}", "", "by line:"]
        lines += [str(s) for s in snap.statistics("lineno")[:40]]
        lines += ["", "by file:"]
        lines += [str(s) for s in snap.statistics("filename")[:30]]
        lines += ["", "by traceback (top 8, 4 frames):"]
        for s in snap.statistics("traceback")[:8]:
            lines.append(f"{s.size / 2**20:.1f} MB in {s.count} blocks")
            lines += ["    " + x for x in s.traceback.format(limit=4)]
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)


if _OUT:
    tracemalloc.start(4)
    threading.Thread(target=_dump, args=(_OUT,), daemon=True, name="tracemalloc-dump").start()
