"""Path confinement of the runner's file calls (kubernel_runner.paths): a matrix over a
small tree with links in and out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubernel_runner.paths import OutsideWorkdir, confine, opened_root, parts_inside, walk


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "data" / "sub").mkdir(parents=True)
    (work / "data" / "f.txt").write_text("x")
    (tmp_path / "outside").mkdir()
    os.symlink("/", work / "root-link")
    os.symlink("/etc/passwd", work / "passwd-link")
    os.symlink("data", work / "data-link")  # stays inside
    os.symlink("../../outside", work / "data" / "up-link")
    os.symlink("missing", work / "dangling")
    return work


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        (".", "."),
        ("data", "data"),
        ("data/f.txt", "data/f.txt"),
        ("./data/../data/sub", "data/sub"),
        ("data-link/f.txt", "data/f.txt"),
        ("new/dir/file", "new/dir/file"),
        ("dangling", "missing"),
        ("{work}", "."),
        ("{work}/data", "data"),
    ],
)
def test_names_inside(tree: Path, name: str, inside: str) -> None:
    resolved = confine(tree, name.format(work=tree))
    assert resolved == (tree / inside).resolve()
    assert "/".join(parts_inside(tree, resolved)) == ("" if inside == "." else inside)


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../outside",
        "/",
        "/etc/passwd",
        "root-link",
        "root-link/etc",
        "passwd-link",
        "data/up-link",
        "data/up-link/x",
        "{work}/../outside",
        "{work}/..",
        "",
        "a\x00b",
    ],
)
def test_names_that_lead_out_are_refused(tree: Path, name: str) -> None:
    with pytest.raises(OutsideWorkdir):
        confine(tree, name.format(work=tree))


def test_outside_is_a_value_error() -> None:
    assert issubclass(OutsideWorkdir, ValueError)  # the server answers ValueErrors with 400


def test_a_walk_never_follows_a_link_and_can_make_directories(tree: Path, tmp_path: Path) -> None:
    with opened_root(tree) as root:
        fd = walk(root, ("data", "sub"))
        assert os.path.samefile(f"/proc/self/fd/{fd}", tree / "data" / "sub")
        os.close(fd)
        for parts in (("data-link",), ("root-link", "etc"), ("data", "f.txt")):
            with pytest.raises(OutsideWorkdir):
                walk(root, parts)
        with pytest.raises(FileNotFoundError):
            walk(root, ("nope",))
        os.close(walk(root, ("made", "deep"), create=True))
    assert (tree / "made" / "deep").is_dir()


def test_runner_tokens_are_derived_per_session() -> None:
    from kubernel.runner import token

    key = b"k" * 32
    base = token(key, "ns", "s1", "uid-1")
    assert base == token(key, "ns", "s1", "uid-1") and len(base) == 64
    assert (
        len(
            {
                base,
                token(key, "ns", "s1", "uid-2"),
                token(key, "ns", "s2", "uid-1"),
                token(key, "ns2", "s1", "uid-1"),
                token(b"j" * 32, "ns", "s1", "uid-1"),
            }
        )
        == 5
    )


def test_the_runner_key_comes_from_a_file_first(tmp_path, monkeypatch) -> None:
    from kubernel.settings import ServiceSettings

    (tmp_path / "key").write_text("from-the-file\n")
    monkeypatch.setenv("KUBERNEL_RUNNER_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("KUBERNEL_RUNNER_KEY", "env")
    assert ServiceSettings.from_env().runner_key == b"from-the-file"
    monkeypatch.delenv("KUBERNEL_RUNNER_KEY_FILE")
    assert ServiceSettings.from_env().runner_key == b"env"
    monkeypatch.delenv("KUBERNEL_RUNNER_KEY")
    assert ServiceSettings.from_env().runner_key == b""
