"""Execution results in Backend.AI 19.09's shape, and the Jupyter messages that fill them (pure).

A result object (docs/runner.md): ``{"runId", "status", "console", "exitCode", "options",
"files"}``. ``console`` holds ``["stdout", text]``, ``["stderr", text]``, ``["media", [mime,
data]]`` and ``["html", text]`` items in the order they happened, consecutive stream text of
one kind merged into one item (as 19.09's agent aggregated its records).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STREAMS = ("stdout", "stderr")
RASTER = ("image/png", "image/jpeg")
ConsoleItem = list  # [kind, data]; a list (not a tuple) so that JSON round trips compare equal


def result(
    run_id: str,
    status: str,
    console: list[ConsoleItem],
    exit_code: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One answer of an execute call. ``options`` is null unless the status carries some
    (``waiting-input``: ``{"is_password": bool}``); ``files`` is always an empty list (19.09
    filled it only for files uploaded to S3, which Kubernel has not)."""
    return {
        "runId": run_id,
        "status": status,
        "console": console,
        "exitCode": exit_code,
        "options": options,
        "files": [],
    }


def plain_traceback(lines: list[str]) -> str:
    """IPython's coloured traceback lines as plain text ending in a newline."""
    text = ANSI.sub("", "\n".join(lines))
    return text if text.endswith("\n") else text + "\n"


def display_items(data: dict[str, Any]) -> list[ConsoleItem]:
    """A rich output (``execute_result``/``display_data``) as at most one console item.

    As 19.09's runner did: ``text/plain`` is only the fallback when the output has other
    representations; PNG and JPEG go as data URLs, SVG as its text; HTML as an ``html`` item.
    Unlike 19.09 (which dropped the output when its first type was not one of these), an
    output whose other types are all unsupported (LaTeX, Markdown, JSON) falls back to its text.
    """
    for mime, value in data.items():
        if mime == "text/html":
            return [["html", str(value)]]
        if mime in RASTER:
            encoded = str(value).replace("\n", "")
            return [["media", [mime, f"data:{mime};base64,{encoded}"]]]
        if mime == "image/svg+xml":
            return [["media", [mime, str(value)]]]
    if "text/plain" in data:
        return [["stdout", str(data["text/plain"])]]  # no newline added, as in 19.09
    return []


def console_items(msg_type: str, content: dict[str, Any]) -> list[ConsoleItem]:
    """One IOPub message of the kernel -> console items."""
    if msg_type == "stream":
        return [["stderr" if content.get("name") == "stderr" else "stdout", str(content.get("text", ""))]]
    if msg_type == "error":
        lines = content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"]
        return [["stderr", plain_traceback([str(line) for line in lines])]]
    if msg_type in ("execute_result", "display_data"):
        return display_items(content.get("data") or {})
    return []


def item_size(kind: str, data: Any) -> int:
    """Bytes an item counts against the output limit."""
    return len(data.encode()) if isinstance(data, str) else len(json.dumps(data))


def dropped_note(dropped: int, limit: int) -> ConsoleItem:
    return ["stderr", f"\n[kubernel: {dropped} bytes of output dropped; a run keeps at most {limit} bytes]\n"]


@dataclass
class OutputBuffer:
    """A run's console items not yet answered, within ``limit`` bytes for the whole run.

    What goes beyond is counted, not kept; the run's last answer ends with one stderr
    item saying how much was dropped (``closing``).
    """

    limit: int
    items: list[ConsoleItem] = field(default_factory=list)
    kept: int = 0
    dropped: int = 0

    def add(self, kind: str, data: Any) -> None:
        size = item_size(kind, data)
        room = self.limit - self.kept
        if size <= room:
            self._append(kind, data, size)
        elif isinstance(data, str) and room > 0:  # as much of the text as fits
            part = data.encode()[:room].decode(errors="ignore")
            self._append(kind, part, len(part.encode()))
            self.dropped += size - len(part.encode())
        else:
            self.dropped += size

    def _append(self, kind: str, data: Any, size: int) -> None:
        if not size and kind in STREAMS:
            return
        self.kept += size
        if self.items and kind in STREAMS and self.items[-1][0] == kind:
            self.items[-1] = [kind, self.items[-1][1] + data]
        else:
            self.items.append([kind, data])

    def drain(self) -> list[ConsoleItem]:
        items, self.items = self.items, []
        return items

    def closing(self) -> list[ConsoleItem]:
        """The rest, and the note on what was dropped (for the run's last answer)."""
        items = self.drain()
        if self.dropped:
            items.append(dropped_note(self.dropped, self.limit))
        return items
