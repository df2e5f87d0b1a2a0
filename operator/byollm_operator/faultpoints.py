"""Crash points for the fault tests (``tests/faults/``); inert in production.

``BYOLLM_TEST_CRASH_AT=<point>`` makes the operator process die (``os._exit``, like a
SIGKILL: nothing flushed, no clean-up) the first time it reaches ``<point>``, so a test can
prove that a reconcile cut half-way (the router Secret written, the Deployment not yet)
is repaired by the next operator. Only tests set it; unset, :func:`reach` does nothing.
"""

from __future__ import annotations

import os

ENV = "BYOLLM_TEST_CRASH_AT"
AFTER_LLM_SECRET = "after-llm-secret"
"""After the ``<name>-llm`` Secret was written, before the Deployment is applied."""

_POINT = os.environ.get(ENV, "")


def reach(point: str) -> None:
    """Die here when the tests asked for it (see module doc)."""
    if _POINT and point == _POINT:
        os.write(2, f"faultpoint {point}: exiting\n".encode())
        os._exit(137)
