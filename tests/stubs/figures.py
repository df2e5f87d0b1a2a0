"""Print a test's figures (examples generated, statuses seen, RSS, latency) past pytest's
output capture, so they appear in every run's output, not only on failure."""

from __future__ import annotations

from typing import Any

import pytest


def print_figure(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)
    else:  # pragma: no cover - run without the terminal plugin
        print(line)


def write_alarm(terminalreporter: Any, line: str) -> None:
    """A line the reader must not miss (a suite skipped for want of its platform), framed
    in bold red in the terminal summary."""
    frame = "!" * 78
    for text in (frame, line, frame):
        terminalreporter.write_line(text, red=True, bold=True)
