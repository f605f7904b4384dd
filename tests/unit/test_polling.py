"""The test bed's progress helpers: a long build says how far it is, and a failed one why."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kubernel_testbed.polling import last_line, run_logged


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "(no output yet)"),
        ("\n\n  \n", "(no output yet)"),
        ("a\nb\n", "b"),
        ("compiling x\n   \n", "compiling x"),
        ("  step 3/9  \r\n", "step 3/9"),
        ("x" * 150, "x" * 99 + "…"),
    ],
)
def test_the_last_line_of_a_log(text: str, expected: str) -> None:
    assert last_line(text) == expected


def test_a_long_command_reports_while_it_runs(tmp_path: Path) -> None:
    said: list[str] = []
    # The child's sleeps stand for a build's work; the test itself waits on the child's exit.
    code = "import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(0.2)\n"
    run_logged([sys.executable, "-c", code], tmp_path / "logs" / "b.log", "child", said.append, every=0.05)
    assert (tmp_path / "logs" / "b.log").read_text() == "step 0\nstep 1\nstep 2\n"
    assert said and all(line.startswith("child: ") and "s so far; last: " in line for line in said)
    assert any("last: step" in line for line in said), said


def test_a_failed_command_raises_with_the_end_of_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)child failed \(3\).*it broke"):
        run_logged(
            [sys.executable, "-c", "import sys; print('it broke'); sys.exit(3)"],
            tmp_path / "f.log",
            "child",
            print,
        )
