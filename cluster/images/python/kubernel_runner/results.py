"""Execution results in Backend.AI's shape, and the Jupyter messages that fill them (pure).

A result object: ``{"runId", "status", "console", "exitCode", "options", "files"}``;
``console`` holds ``["stdout", text]``, ``["stderr", text]``, ``["media", [mime, data]]``
and ``["html", text]`` items in the order they happened.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MEDIA_TYPES = ("image/svg+xml", "image/png", "image/jpeg", "image/gif", "application/json")
ConsoleItem = list


@dataclass
class OutputBuffer:
    """A run's console items not yet sent, within ``limit`` bytes for the whole run;
    what goes beyond is counted, and announced once with the next answer."""

    limit: int
    items: list[ConsoleItem] = field(default_factory=list)
    kept: int = 0
    dropped: int = 0
    _announced: bool = False

    def add(self, kind: str, data: Any) -> None:
        size = len(data.encode()) if isinstance(data, str) else len(json.dumps(data))
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
        self.kept += size
        if self.items and kind in ("stdout", "stderr") and self.items[-1][0] == kind:
            self.items[-1][1] += data  # consecutive stream text in one item
        else:
            self.items.append([kind, data])

    def drain(self) -> list[ConsoleItem]:
        items, self.items = self.items, []
        if self.dropped and not self._announced:
            self._announced = True
            items.append(["stderr", f"\n[output limit of {self.limit} bytes reached: the rest is dropped]\n"])
        return items

    def finish_note(self) -> list[ConsoleItem]:
        """At the end: how much was dropped in all."""
        if not self.dropped:
            return []
        return [["stderr", f"[{self.dropped} bytes of output dropped in all]\n"]]


def plain_traceback(lines: list[str]) -> str:
    return ANSI.sub("", "\n".join(lines)) + "\n"


def console_items(msg_type: str, content: dict[str, Any]) -> list[tuple[str, Any]]:
    """One IOPub message of the kernel -> console items (kind, data)."""
    if msg_type == "stream":
        return [("stderr" if content.get("name") == "stderr" else "stdout", content.get("text", ""))]
    if msg_type == "error":
        return [("stderr", plain_traceback(content.get("traceback") or
                                          [f"{content.get('ename')}: {content.get('evalue')}"]))]
    if msg_type in ("execute_result", "display_data"):
        data = content.get("data") or {}
        if "text/html" in data:
            return [("html", data["text/html"])]
        for mime in MEDIA_TYPES:
            if mime in data:
                return [("media", [mime, data[mime]])]
        if "text/plain" in data:
            return [("stdout", data["text/plain"] + "\n")]
    return []


def result(run_id: str, status: str, console: list[ConsoleItem], exit_code: int | None = None,
           options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"runId": run_id, "status": status, "console": console, "exitCode": exit_code,
            "options": options or {}, "files": []}
