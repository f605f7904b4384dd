"""The runner's result objects and console items (kubernel_runner.results, .runs): pure."""

from __future__ import annotations

from typing import Any

import pytest

from kubernel_runner.results import OutputBuffer, console_items, display_items, plain_traceback, result
from kubernel_runner.runs import Run


@pytest.mark.parametrize(
    ("msg_type", "content", "expected"),
    [
        ("stream", {"name": "stdout", "text": "hi\n"}, [["stdout", "hi\n"]]),
        ("stream", {"name": "stderr", "text": "oops"}, [["stderr", "oops"]]),
        (
            "error",
            {
                "ename": "ZeroDivisionError",
                "evalue": "division by zero",
                "traceback": ["\x1b[0;31mZeroDivisionError\x1b[0m", "division by zero"],
            },
            [["stderr", "ZeroDivisionError\ndivision by zero\n"]],
        ),
        ("error", {"ename": "E", "evalue": "v", "traceback": []}, [["stderr", "E: v\n"]]),
        ("execute_result", {"data": {"text/plain": "42"}}, [["stdout", "42"]]),
        (
            "display_data",
            {"data": {"text/plain": "<Figure>", "image/png": "iVBO\nRw=="}},
            [["media", ["image/png", "data:image/png;base64,iVBORw=="]]],
        ),
        (
            "display_data",
            {"data": {"text/plain": "x", "image/jpeg": "/9j/"}},
            [["media", ["image/jpeg", "data:image/jpeg;base64,/9j/"]]],
        ),
        (
            "display_data",
            {"data": {"text/plain": "x", "image/svg+xml": "<svg/>"}},
            [["media", ["image/svg+xml", "<svg/>"]]],
        ),
        ("execute_result", {"data": {"text/plain": "df", "text/html": "<table/>"}}, [["html", "<table/>"]]),
        ("execute_result", {"data": {"text/plain": "x**2", "text/latex": "$x^2$"}}, [["stdout", "x**2"]]),
        ("display_data", {"data": {"text/markdown": "# t"}}, []),
        ("status", {"execution_state": "busy"}, []),
        ("execute_input", {"code": "1"}, []),
        ("clear_output", {"wait": False}, []),
    ],
)
def test_iopub_messages_as_console_items(msg_type: str, content: dict, expected: list) -> None:
    assert console_items(msg_type, content) == expected


def test_display_takes_the_first_supported_type_in_the_messages_order() -> None:
    assert display_items({"text/plain": "p", "image/svg+xml": "<svg/>", "text/html": "<b/>"}) == [
        ["media", ["image/svg+xml", "<svg/>"]]
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["a", "b"], "a\nb\n"),
        (["a\n"], "a\n"),
        (["\x1b[1;32mok\x1b[0m"], "ok\n"),
        (["\x1b[?25lx"], "x\n"),
    ],
)
def test_plain_traceback(lines: list[str], expected: str) -> None:
    assert plain_traceback(lines) == expected


def test_the_result_object_has_19_09s_keys() -> None:
    assert result("r1", "finished", [], 0) == {
        "runId": "r1",
        "status": "finished",
        "console": [],
        "exitCode": 0,
        "options": None,
        "files": [],
    }


@pytest.mark.parametrize(
    ("adds", "limit", "items", "dropped"),
    [
        (
            [("stdout", "a"), ("stdout", "b"), ("stderr", "c"), ("stdout", "d")],
            100,
            [["stdout", "ab"], ["stderr", "c"], ["stdout", "d"]],
            0,
        ),
        ([("stdout", "x" * 10), ("stdout", "y" * 10)], 15, [["stdout", "x" * 10 + "y" * 5]], 5),
        ([("stdout", "é" * 3)], 3, [["stdout", "é"]], 4),  # never half a character
        ([("media", ["image/png", "d" * 50]), ("stdout", "t")], 20, [["stdout", "t"]], 67),  # its JSON
        ([("html", "<b/>"), ("html", "<i/>")], 100, [["html", "<b/>"], ["html", "<i/>"]], 0),
        ([("stdout", ""), ("stderr", "")], 100, [], 0),
    ],
)
def test_output_is_kept_within_the_limit(
    adds: list[tuple[str, Any]], limit: int, items: list, dropped: int
) -> None:
    buffer = OutputBuffer(limit)
    for kind, data in adds:
        buffer.add(kind, data)
    assert buffer.items == items and buffer.dropped == dropped
    closing = buffer.closing()
    assert closing[: len(items)] == items
    notes = closing[len(items) :]
    assert len(notes) == (1 if dropped else 0)
    assert not notes or (notes[0][0] == "stderr" and f"{dropped} bytes" in notes[0][1])


def test_the_limit_holds_for_the_whole_run_across_answers() -> None:
    buffer = OutputBuffer(10)
    buffer.add("stdout", "x" * 8)
    assert buffer.drain() == [["stdout", "x" * 8]]
    buffer.add("stdout", "y" * 8)
    assert buffer.drain() == [["stdout", "yy"]] and buffer.dropped == 6


def test_a_runs_answers_in_order() -> None:
    run = Run(1000, "r")
    assert run.take_answer() == result("r", "continued", [])
    run.add("stdout", "cleaning\n")
    run.stage_finished("clean-finished", 2)
    run.add("stdout", "building\n")
    run.stage_finished("build-finished", 0)
    run.add("stdout", "running\n")  # before the client fetched the stages' answers
    assert run.answerable
    assert run.take_answer() == result("r", "clean-finished", [["stdout", "cleaning\n"]], 2)
    assert run.take_answer() == result("r", "build-finished", [["stdout", "building\n"]], 0)
    assert not run.answerable
    assert run.take_answer() == result("r", "continued", [["stdout", "running\n"]])
    run.wait_input("name? ", password=True)
    assert run.take_answer() == result(
        "r", "waiting-input", [["stdout", "name? "]], None, {"is_password": True}
    )
    run.resume()
    run.add("stdout", "hi\n")
    run.finish(0)
    run.finish(1)  # the first end counts
    assert not run.final_taken
    assert run.take_answer() == result("r", "finished", [["stdout", "hi\n"]], 0) and run.final_taken


async def test_an_answer_waits_for_the_run_at_most_the_deadline() -> None:
    run = Run(1000)
    assert (await run.answer(0.05))["status"] == "continued"
    run.finish(0)
    assert (await run.answer(60))["status"] == "finished"  # at once
