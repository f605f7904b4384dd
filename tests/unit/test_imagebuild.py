"""The real node's image builder, its pure part: input digests, the OCI configuration
it writes, the mirror it picks; and the runner's wheels."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kubernel_testbed import imagebuild
from kubernel_testbed.imagebuild import PAUSE, PYTHON, RUNNER_BOOTSTRAP, DebianBase, ImageSpec

FILES = {"kernel.py": b"print('ready')\n", "lib/helper.py": b"X = 1\n"}
BUILDER = b"builder v1"


def digest(
    spec: ImageSpec = PYTHON, files: dict[str, bytes] = FILES, builder: bytes = BUILDER, toolchain: str = ""
) -> str:
    return imagebuild.inputs_digest(spec, files, builder, toolchain)


def with_packages(*packages: str) -> ImageSpec:
    return dataclasses.replace(PYTHON, base=dataclasses.replace(PYTHON.base, packages=packages))


def test_same_inputs_give_the_same_digest_whatever_the_file_order() -> None:
    reordered = dict(reversed(list(FILES.items())))
    assert digest() == digest(files=dict(FILES)) == digest(files=reordered)
    assert len(digest()) == 16


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"files": {**FILES, "kernel.py": b"print('READY')\n"}}, id="file content"),
        pytest.param({"files": {**FILES, "extra.py": b""}}, id="file added"),
        pytest.param({"files": {"kernel.py": FILES["kernel.py"]}}, id="file removed"),
        pytest.param(
            {"files": {"kernel2.py": FILES["kernel.py"], "lib/helper.py": FILES["lib/helper.py"]}},
            id="file renamed",
        ),
        pytest.param({"spec": with_packages("python3", "procps", "python3-pip")}, id="package added"),
        pytest.param({"spec": with_packages("python3")}, id="package removed"),
        pytest.param(
            {"spec": dataclasses.replace(PYTHON, base=DebianBase("trixie", PYTHON.base.packages))}, id="suite"
        ),
        pytest.param({"spec": dataclasses.replace(PYTHON, env=(*PYTHON.env, "X=1"))}, id="env"),
        pytest.param({"spec": dataclasses.replace(PYTHON, tag="3.12")}, id="tag"),
        pytest.param({"builder": b"builder v2"}, id="builder code"),
        pytest.param({"toolchain": "go1.27.0"}, id="go toolchain"),
    ],
)
def test_any_changed_input_changes_the_digest(changed: dict[str, object]) -> None:
    assert digest(**changed) != digest()


def test_file_boundaries_are_part_of_the_digest() -> None:
    # Without length prefixes these two would hash the same byte stream.
    assert digest(files={"a": b"bc"}) != digest(files={"ab": b"c"})


@pytest.mark.parametrize(
    ("base", "same"),
    [
        (DebianBase("bookworm", ("python3", "procps")), True),
        (DebianBase("bookworm", ("python3", "procps", "git")), False),
        (DebianBase("bookworm", ("python3", "procps"), variant="buildd"), False),
        (DebianBase("trixie", ("python3", "procps")), False),
    ],
)
def test_the_debootstrap_cache_key_follows_suite_variant_and_packages(base: DebianBase, same: bool) -> None:
    assert (imagebuild.base_digest(base) == imagebuild.base_digest(PYTHON.base)) is same


def test_an_image_configuration_change_keeps_the_debootstrap_rootfs() -> None:
    changed = dataclasses.replace(PYTHON, env=(), cmd=("/bin/true",))
    assert digest(changed) != digest()
    assert imagebuild.base_digest(changed.base) == imagebuild.base_digest(PYTHON.base)


def test_read_inputs_takes_every_file_but_python_caches(tmp_path: Path) -> None:
    (tmp_path / "sub" / "__pycache__").mkdir(parents=True)
    (tmp_path / "kernel.py").write_bytes(b"k")
    (tmp_path / "sub" / "x.txt").write_bytes(b"x")
    (tmp_path / "sub" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    assert imagebuild.read_inputs(tmp_path) == {"kernel.py": b"k", "sub/x.txt": b"x"}


@pytest.mark.parametrize(
    ("spec", "files"),
    [
        (PAUSE, {"go.mod", "main.go"}),
        (PYTHON, {"requirements.txt", "kubernel_runner/__main__.py", "kubernel_runner/server.py"}),
    ],
)
def test_each_image_has_its_folder_in_the_repository(spec: ImageSpec, files: set[str]) -> None:
    assert files <= set(imagebuild.read_inputs(imagebuild.source_dir(spec)))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (PAUSE, {"Entrypoint": ["/pause"], "User": "65535:65535"}),
        (PYTHON, {"Cmd": ["/usr/bin/python3", "-I", "-c", RUNNER_BOOTSTRAP], "WorkingDir": "/home/work"}),
    ],
)
def test_the_oci_configuration(spec: ImageSpec, expected: dict[str, object]) -> None:
    config = imagebuild.oci_config(spec)
    assert {key: config[key] for key in expected} == expected
    assert config["Labels"]["org.opencontainers.image.title"] == f"kubernel/{spec.name}"


def test_the_kernel_image_sets_no_user_and_its_environment() -> None:
    config = imagebuild.oci_config(PYTHON)
    assert "User" not in config  # the Pod's securityContext decides
    assert "Entrypoint" not in config  # a Pod's `args` alone replace the kernel command
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["LANG"] == "C.UTF-8" and env["PYTHONUNBUFFERED"] == "1" and env["HOME"] == "/home/work"
    assert "/usr/bin" in env["PATH"].split(":")


@pytest.mark.parametrize("spec", [PAUSE, PYTHON], ids=lambda s: s.name)
def test_umoci_arguments_spell_out_the_configuration(spec: ImageSpec) -> None:
    args = imagebuild.umoci_config_args(spec)
    config = imagebuild.oci_config(spec)
    assert [a.split("=", 1)[1] for a in args if a.startswith("--config.entrypoint=")] == config.get(
        "Entrypoint", []
    )
    assert [a.split("=", 1)[1] for a in args if a.startswith("--config.cmd=")] == config.get("Cmd", [])
    assert [a.split("=", 1)[1] for a in args if a.startswith("--config.env=")] == config.get("Env", [])
    assert any(a.startswith("--config.user=") for a in args) is ("User" in config)


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")
@pytest.mark.parametrize("spec", [PAUSE, PYTHON], ids=lambda s: s.name)
def test_umoci_writes_exactly_the_configuration(spec: ImageSpec, tmp_path: Path) -> None:
    image = f"{tmp_path / 'oci'}:t"
    subprocess.run(["umoci", "init", "--layout", tmp_path / "oci"], check=True)
    subprocess.run(["umoci", "new", "--image", image], check=True)
    subprocess.run(["umoci", "config", "--image", image, *imagebuild.umoci_config_args(spec)], check=True)
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    manifest = json.loads(
        (blobs / imagebuild.manifest_digests(index)["t"].removeprefix("sha256:")).read_text()
    )
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_text())
    assert config["config"] == imagebuild.oci_config(spec)


DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    ("text", "suite", "mirror"),
    [
        (DEBIAN_SOURCES, "bookworm", "http://mirror.example/debian"),
        (DEBIAN_SOURCES, "bookworm-security", "http://mirror.example/debian-security"),
        (DEBIAN_SOURCES, "trixie", None),
        (DEBIAN_SOURCES.replace("Types: deb\n#", "Types: deb-src\n#"), "bookworm", None),
        (DEBIAN_SOURCES.replace("Components: main\nSigned", "Enabled: no\nSigned"), "bookworm", None),
        (
            "Types: deb\nURIs: cdrom:/media/ file:/srv/debian https://m.example/debian\nSuites: bookworm\n",
            "bookworm",
            "https://m.example/debian",
        ),
        ("", "bookworm", None),
    ],
)
def test_the_mirror_comes_from_the_stanza_of_the_suite(text: str, suite: str, mirror: str | None) -> None:
    assert imagebuild.mirror_from_sources(text, suite) == mirror


def test_debootstrap_command() -> None:
    assert imagebuild.debootstrap_argv(PYTHON.base, Path("/c/rootfs"), "http://m/debian") == [
        "debootstrap",
        "--variant=minbase",
        "--include=python3,procps",
        "bookworm",
        "/c/rootfs",
        "http://m/debian",
    ]


def test_layout_tags_and_registry_references() -> None:
    assert [imagebuild.layout_tag(s) for s in imagebuild.IMAGES] == ["pause-3.10", "python-3.11"]
    assert imagebuild.registry_reference("127.0.0.1:5000", PYTHON) == "127.0.0.1:5000/kubernel/python:3.11"
    index = {
        "manifests": [
            {"digest": "sha256:aa", "annotations": {"org.opencontainers.image.ref.name": "x-1"}},
            {"digest": "sha256:bb"},
        ]
    }
    assert imagebuild.manifest_digests(index) == {"x-1": "sha256:aa"}


def test_mounts_left_inside_a_rootfs_are_found_deepest_first() -> None:
    mountinfo = (
        "22 1 0:21 / /proc rw - proc proc rw\n"
        "90 1 0:50 / /c/root\\040fs/proc rw - proc proc rw\n"
        "91 90 0:51 / /c/root\\040fs/proc/sys/fs/binfmt_misc rw - binfmt_misc x rw\n"
        "92 1 0:52 / /c/root\\040fs2 rw - tmpfs t rw\n"
    )
    assert imagebuild.mounts_below(mountinfo, Path("/c/root fs")) == [
        "/c/root fs/proc/sys/fs/binfmt_misc",
        "/c/root fs/proc",
    ]


def test_the_python_image_checks_its_runner_with_its_own_python() -> None:
    assert PYTHON.check[:4] == PYTHON.cmd and PYTHON.check[4:] == ("--check",)
    assert "PYTHONPATH=/opt/kubernel:/opt/kubernel/lib" in PYTHON.env


def test_the_runners_wheels_are_pinned_and_installed_for_the_images_python() -> None:
    requirements = imagebuild.source_dir(PYTHON) / PYTHON.python_requirements
    pins = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert pins and all("==" in pin for pin in pins)
    assert {"aiohttp", "jupyter_client", "ipykernel"} <= {pin.split("==")[0] for pin in pins}
    argv = imagebuild.pip_target_argv("/py", requirements, Path("/root/opt/kubernel/lib"))
    assert (
        argv[:4] == ["/py", "-m", "pip", "install"] and "--no-deps" in argv and "--only-binary=:all:" in argv
    )
    assert argv[argv.index("--target") + 1] == "/root/opt/kubernel/lib"
    assert argv[argv.index("--python-version") + 1] == "3.11"
