"""docs/conformance.md stays true to the code: each `path:line` (`symbol`) points at its
symbol, each test it names exists, and each row has a status.

When code moves, ``python tests/unit/test_conformance_doc.py`` rewrites the line numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "conformance.md").read_text()
CODE_REF = re.compile(r"`([\w/.]+\.py):(\d+)` \(`(\w+)`\)")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
STATUSES = ("same", "fixed", "kept (", "beyond the seeds")


def definitions(path: str, symbol: str) -> list[int]:
    lines = (REPO / path).read_text().splitlines()
    return [
        n
        for n, text in enumerate(lines, 1)
        if re.search(rf"\b(def|class) {symbol}\b|^\s*{symbol}\s*[:=]", text)
    ]


@pytest.mark.parametrize(("path", "line", "symbol"), sorted(set(CODE_REF.findall(DOC))))
def test_code_references_point_at_their_symbol(path: str, line: str, symbol: str) -> None:
    where = definitions(path, symbol)
    assert int(line) in where, f"{path}:{line} does not define {symbol} (line(s) {where}): run {__file__}"


@pytest.mark.parametrize(("path", "name"), sorted(set(TEST_REF.findall(DOC))))
def test_named_tests_exist(path: str, name: str) -> None:
    assert re.search(rf"def {name}\(", (REPO / path).read_text()), f"{path} has no {name}"


def test_every_row_has_a_status() -> None:
    lines = DOC.splitlines()
    rows = [
        line
        for line, after in zip(lines, [*lines[1:], ""], strict=True)
        if line.startswith("| ") and not after.startswith("|---")
    ]  # not a header
    assert len(rows) > 80
    for row in rows:
        status = row.rstrip(" |").rsplit(" | ", 1)[-1]
        assert status.startswith(STATUSES), row


if __name__ == "__main__":

    def _current(match: re.Match[str]) -> str:
        path, _, symbol = match.groups()
        return f"`{path}:{definitions(path, symbol)[0]}` (`{symbol}`)"

    (REPO / "docs" / "conformance.md").write_text(CODE_REF.sub(_current, DOC))
