"""Batch mode's step sequence (kubernel_runner.batch): pure."""

from __future__ import annotations

import pytest

from kubernel_runner.batch import STAGES, Step, default_command, signal_exit_code, step

PY = "/usr/bin/python3"


@pytest.mark.parametrize(
    ("stage", "present", "expected"),
    [
        ("clean", frozenset({"Makefile"}), 0),
        ("build", frozenset({"Makefile", "setup.py"}), "make"),
        ("build", frozenset({"setup.py"}), f"{PY} -m pip install -e ."),
        ("build", frozenset(), 0),
        ("exec", frozenset({"main.py"}), f"{PY} main.py"),
        ("exec", frozenset({"Makefile"}), 127),
    ],
)
def test_what_star_means(stage: str, present: frozenset[str], expected: str | int) -> None:
    assert default_command(stage, present, PY) == expected


def sequence(options: dict, codes: dict[str, int], present: frozenset[str] = frozenset()) -> list[tuple]:
    """The answers a batch run gives, its commands' exit codes given (what Batch.run does)."""
    answers, last, build_failed = [], 0, False
    for stage in STAGES:
        planned = step(
            stage, options.get(stage), present=present, python=PY, last_code=last, build_failed=build_failed
        )
        if planned is None:
            continue
        code = codes.get(planned.command, 0) if planned.command else planned.exit_code
        build_failed = build_failed or (stage == "build" and code != 0)
        last = code
        answers.append((planned.status, planned.command, code))
    return answers


@pytest.mark.parametrize(
    ("options", "codes", "expected"),
    [
        (
            {"clean": "c", "build": "b", "exec": "e"},
            {"e": 3},
            [("clean-finished", "c", 0), ("build-finished", "b", 0), ("finished", "e", 3)],
        ),
        ({"build": "b", "exec": "e"}, {"b": 2}, [("build-finished", "b", 2), ("finished", None, 127)]),
        ({"clean": "c", "exec": "e"}, {"c": 1, "e": 0}, [("clean-finished", "c", 1), ("finished", "e", 0)]),
        ({"clean": None, "build": "", "exec": "e"}, {}, [("finished", "e", 0)]),
        ({"build": "b"}, {"b": 5}, [("build-finished", "b", 5), ("finished", None, 127)]),
        ({"build": "b"}, {}, [("build-finished", "b", 0), ("finished", None, 0)]),
        ({"clean": "c"}, {"c": 4}, [("clean-finished", "c", 4), ("finished", None, 4)]),
        ({}, {}, [("finished", None, 0)]),
        (
            {"clean": "*", "build": "*", "exec": "*"},
            {},
            [("clean-finished", None, 0), ("build-finished", None, 0), ("finished", None, 127)],
        ),
    ],
)
def test_the_sequence_of_answers(options: dict, codes: dict[str, int], expected: list[tuple]) -> None:
    assert sequence(options, codes) == expected


def test_star_with_a_makefile_and_a_main_py() -> None:
    present = frozenset({"Makefile", "main.py"})
    assert sequence({"build": "*", "exec": "*"}, {"make": 0}, present) == [
        ("build-finished", "make", 0),
        ("finished", f"{PY} main.py", 0),
    ]


def test_a_step_is_a_value() -> None:
    assert step("exec", "ls", present=frozenset(), python=PY, last_code=0, build_failed=False) == Step(
        "exec", "finished", "ls"
    )


@pytest.mark.parametrize(("returncode", "expected"), [(0, 0), (3, 3), (-2, 130), (-9, 137)])
def test_exit_codes_as_a_shell_reports_them(returncode: int, expected: int) -> None:
    assert signal_exit_code(returncode) == expected
