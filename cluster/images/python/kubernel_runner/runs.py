"""One execution ("run"): its output so far, its state, and what an execute call answers."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from typing import Any

from .results import OutputBuffer, result

RUNNING, WAITING_INPUT, FINISHED = "running", "waiting-input", "finished"


class Run:
    def __init__(self, output_limit: int, run_id: str | None = None) -> None:
        self.id = run_id or secrets.token_hex(8)
        self.output = OutputBuffer(output_limit)
        self.state = RUNNING
        self.exit_code: int | None = None
        self.input_options: dict[str, Any] = {}
        self.stages: deque[tuple[str, int]] = deque()  # batch: ("build-finished", exit code), in order
        self._changed = asyncio.Event()

    def add(self, kind: str, data: Any) -> None:
        self.output.add(kind, data)
        self._changed.set()

    def stage_finished(self, status: str, exit_code: int) -> None:
        self.stages.append((status, exit_code))
        self._changed.set()

    def wait_input(self, prompt: str, password: bool) -> None:
        if prompt:
            self.output.add("stdout", prompt)
        self.state, self.input_options = WAITING_INPUT, {"is_password": password}
        self._changed.set()

    def resume(self) -> None:
        self.state, self.input_options = RUNNING, {}

    def finish(self, exit_code: int) -> None:
        if self.state != FINISHED:
            self.state, self.exit_code = FINISHED, exit_code
            self._changed.set()

    @property
    def answerable(self) -> bool:
        return bool(self.stages) or self.state in (WAITING_INPUT, FINISHED)

    async def answer(self, wait_seconds: float) -> dict[str, Any]:
        """What happened since the last answer: at the latest after ``wait_seconds``
        (``continued``), at once when the run finishes, asks for input or ends a stage."""
        deadline = time.monotonic() + wait_seconds
        while not self.answerable:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        if self.stages:
            status, code = self.stages.popleft()
            return result(self.id, status, self.output.drain(), code)
        if self.state == FINISHED:
            return result(self.id, "finished", self.output.drain() + self.output.finish_note(), self.exit_code)
        if self.state == WAITING_INPUT:
            return result(self.id, "waiting-input", self.output.drain(), None, self.input_options)
        return result(self.id, "continued", self.output.drain())
