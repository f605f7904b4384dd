"""One execution ("run"): its output so far, its state, and what an execute call answers.

A run answers at the latest after ``continue_seconds`` (``continued``), and at once when it
finishes, asks for input, or (batch) ends a stage; each answer carries the console items
since the previous one. A stage's answer carries exactly the output before its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .results import ConsoleItem, OutputBuffer, result

RUNNING, WAITING_INPUT, FINISHED = "running", "waiting-input", "finished"


@dataclass(frozen=True)
class StageEnd:
    """A batch stage that ended (``clean-finished``/``build-finished``), with its output."""

    status: str
    exit_code: int
    console: list[ConsoleItem]


class Run:
    def __init__(self, output_limit: int, run_id: str | None = None) -> None:
        self.id = run_id or secrets.token_hex(8)
        self.output = OutputBuffer(output_limit)
        self.state = RUNNING
        self.exit_code: int | None = None
        self.input_options: dict[str, Any] = {}
        self.stages: deque[StageEnd] = deque()
        self.final_taken = False
        """The ``finished`` answer was built (the run is then forgotten once it is sent)."""
        self._changed = asyncio.Event()

    # -- what happens -----------------------------------------------------------------
    def add(self, kind: str, data: Any) -> None:
        self.output.add(kind, data)
        self._changed.set()

    def stage_finished(self, status: str, exit_code: int) -> None:
        self.stages.append(StageEnd(status, exit_code, self.output.drain()))
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

    # -- what is answered -------------------------------------------------------------
    @property
    def answerable(self) -> bool:
        """Something to answer now, without waiting for the continuation deadline."""
        return bool(self.stages) or self.state in (WAITING_INPUT, FINISHED)

    def take_answer(self) -> dict[str, Any]:
        """The answer for now, consuming the output it carries."""
        if self.stages:
            stage = self.stages.popleft()
            return result(self.id, stage.status, stage.console, stage.exit_code)
        if self.state == FINISHED:
            self.final_taken = True
            return result(self.id, "finished", self.output.closing(), self.exit_code)
        if self.state == WAITING_INPUT:
            return result(self.id, "waiting-input", self.output.drain(), None, dict(self.input_options))
        return result(self.id, "continued", self.output.drain())

    async def answer(self, wait_seconds: float) -> dict[str, Any]:
        """Wait until the run has something to say, at most ``wait_seconds``, and say it."""
        deadline = time.monotonic() + wait_seconds
        while True:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if self.answerable or remaining <= 0:
                return self.take_answer()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
