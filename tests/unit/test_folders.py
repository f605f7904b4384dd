"""Virtual folders: who may mount which claim, and mount requests (pure)."""

from __future__ import annotations

import pytest

from kubernel.folders import BadMount, MountRequest, access_of, parse_mount, read_only

ALICE = {"access_key": "AKIAALICE", "domain": "d1", "group": "research"}


@pytest.mark.parametrize(
    ("labels", "access"),
    [
        (None, None),  # no such claim
        ({}, None),  # nobody's folder
        ({"app": "db"}, None),
        ({"kubernel.io/access-key": "AKIAALICE"}, "rw"),
        ({"kubernel.io/access-key": "AKIAALICE", "kubernel.io/access": "ro"}, "ro"),
        ({"kubernel.io/access-key": "AKIAALICE", "kubernel.io/domain": "d1"}, "rw"),
        ({"kubernel.io/access-key": "AKIAALICE", "kubernel.io/domain": "d2"}, None),
        ({"kubernel.io/access-key": "AKIABOB"}, None),
        ({"kubernel.io/access-key": "akiaalice"}, None),  # exact: keys are case-sensitive
        (
            {
                "kubernel.io/access-key": "AKIABOB",
                "kubernel.io/group": "research",
                "kubernel.io/domain": "d1",
            },
            None,
        ),
        ({"kubernel.io/group": "research", "kubernel.io/domain": "d1"}, "rw"),
        ({"kubernel.io/group": "research", "kubernel.io/domain": "d1", "kubernel.io/access": "ro"}, "ro"),
        ({"kubernel.io/group": "research"}, None),  # a group folder of the default domain
        ({"kubernel.io/group": "default", "kubernel.io/domain": "d1"}, None),  # another group's
        ({"kubernel.io/domain": "d1"}, "rw"),
        ({"kubernel.io/domain": "d2"}, None),
        ({"kubernel.io/domain": "d1", "kubernel.io/access": "anything"}, "rw"),
    ],
)
def test_who_may_mount_a_claim(labels: dict | None, access: str | None) -> None:
    assert access_of(labels, **ALICE) == access


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("data", MountRequest("data")),
        ("data:ro", MountRequest("data", None, "ro")),
        ("data:rw", MountRequest("data", None, "rw")),
        (
            "pkgs:.local/lib/python3.6/site-packages",
            MountRequest("pkgs", ".local/lib/python3.6/site-packages"),
        ),
        ("pkgs:.local/lib:ro", MountRequest("pkgs", ".local/lib", "ro")),
        ("data:/home/work/inputs", MountRequest("data", "inputs")),
        ("data:a/./b/../c", MountRequest("data", "a/c")),
        ("data:./ro", MountRequest("data", "ro")),  # a directory called ro
    ],
)
def test_mount_requests(text: str, request_: MountRequest) -> None:
    assert parse_mount(text) == request_


@pytest.mark.parametrize(
    "text",
    [
        "data:../etc",
        "data:/etc",
        "data:/home/work",
        "data:.",
        "data:a/../..",
        "data:/home/workx",
        "data:/",
        "data:x:y:ro",
        "Bad_Name",
        "",
        ":x",
    ],
)
def test_mounts_stay_in_the_working_directory(text: str) -> None:
    with pytest.raises(BadMount):
        parse_mount(text)


@pytest.mark.parametrize(
    ("requested", "granted", "flag"),
    [
        (None, "rw", False),
        (None, "ro", True),
        ("ro", "rw", True),
        ("ro", "ro", True),
        ("rw", "rw", False),
        ("rw", "ro", None),
    ],
)
def test_read_only(requested: str | None, granted: str, flag: bool | None) -> None:
    assert read_only(requested, granted) == flag  # type: ignore[arg-type]
