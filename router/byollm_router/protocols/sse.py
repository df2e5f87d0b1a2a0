"""An incremental Server-Sent Events splitter shared by the stream translators."""

from __future__ import annotations

from typing import Any

import orjson

from byollm_router import errors
from byollm_router.contract import DEFAULT_MAX_BUFFERED_RESPONSE_BYTES


class SSESplitter:
    """Feeds arbitrary byte slices (events may straddle reads) and returns the complete
    events as ``(event name or None, data bytes)``. Linear in the bytes fed; one event may
    be at most ``max_event_bytes`` (beyond it a 502 :class:`errors.RouterError`)."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_BUFFERED_RESPONSE_BYTES) -> None:
        self._buf = bytearray()
        self._scanned = 0
        self._cr = False
        self._max = max_event_bytes

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        if self._cr:
            self._cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            self._cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf
        buf += data
        out: list[tuple[str | None, bytes]] = []
        start = 0
        pos = max(self._scanned - 1, 0)
        while (end := buf.find(b"\n\n", pos)) >= 0:
            event = _parse(bytes(buf[start:end]))
            if event is not None:
                out.append(event)
            start = pos = end + 2
        if start:
            del buf[:start]
        self._scanned = len(buf)
        if len(buf) > self._max:
            raise errors.upstream_too_large(self._max)
        return out


def _parse(raw: bytes) -> tuple[str | None, bytes] | None:
    name: str | None = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not data:
        return None
    return name, b"\n".join(data)


def load_event(data: bytes) -> dict[str, Any]:
    """One event's JSON object; a 502 when the upstream sent something else."""
    try:
        value = orjson.loads(data)
    except ValueError:
        raise errors.upstream_bad_response() from None
    if not isinstance(value, dict):
        raise errors.upstream_bad_response()
    return value


def event(name: str, obj: Any) -> bytes:
    """One named SSE event (both APIs name their events and repeat the name as ``type``)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
