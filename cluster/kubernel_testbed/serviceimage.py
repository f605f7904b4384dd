"""The service image (the repository's Dockerfile), built without a Docker engine.

buildah (``--isolation chroot``, storage under the cache) builds the Dockerfile as it
is, on a base of our own in place of the pinned ``python:3.11.14-slim-bookworm``
(Docker Hub is out of reach): ``cluster/images/python-base/Containerfile``, Debian
bookworm from debootstrap (imagebuild's cached rootfs) and CPython 3.11.14 compiled
from the Go module proxy's zip of its git tree (sha256 and the Go checksum database's
h1 hash pinned in that Containerfile, both checked here). The base is built once per
digest of its inputs; the service layers are rebuilt by buildah's layer cache when
the Dockerfile's inputs change. ``push`` copies the image to the test bed's registry,
from where the real node's kubelet pulls ``registry.kubernel.test/kubernel/kubernel``.

    python -m kubernel_testbed.serviceimage build [--tag dev]   # prints the local name
    python -m kubernel_testbed.serviceimage push [--tag dev]    # prints registry.kubernel.test/...@sha256:...

docs/image.md has the details, the timings and the sizes.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import imagebuild, node, realnode
from .components import Layout
from .polling import run_logged
from .settings import REPO_ROOT, TestbedSettings, bin_dir

Say = Callable[[str], None]

BASE_DIR = REPO_ROOT / "cluster" / "images" / "python-base"
BASE_CONTAINERFILE = BASE_DIR / "Containerfile"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DEBIAN = imagebuild.DebianBase("bookworm", ())
"""debian:bookworm-slim is a minbase bootstrap too; ca-certificates, netbase and tzdata
come in the Containerfile, as in docker-library/python."""
DEBIAN_TAR = "debian-bookworm.tar"
CPYTHON_ZIP = "cpython.zip"
GO_PROXY = "https://proxy.golang.org"
CPYTHON_MODULE = "github.com/python/cpython"
BASE_REPOSITORY = "localhost/kubernel/python-base"
SERVICE_REPOSITORY = "kubernel/kubernel"
DEFAULT_TAG = "dev"
STORAGE_DRIVER = "overlay"
"""Works as root on this kernel and leaves nothing mounted once buildah exits (checked
in docs/image.md); vfs would copy the whole rootfs at every step."""

DPKG_SLIM = """\
# Packages installed later leave out manuals, docs and translations (as Debian's
# container images do); the copyright files stay.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
APT_SLIM = """\
// Nothing apt caches may stay in a layer: no .deb once installed, and no package
// caches (pkgcache.bin and srcpkgcache.bin are 40 MB each after an update).
APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
// A purge's --auto-remove must take the compiler too: apt suggests dpkg-dev, which
// pulls in gcc, and suggestions keep packages by default (Debian's image says so too).
APT::AutoRemove::SuggestsImportant "false";
// Smaller lists while a step runs: compressed, no translations.
Acquire::GzipIndexes "true";
Acquire::Languages "none";
"""
BUILD_HOME = "/root"
"""Where the build's RUN steps find pip's configuration (HOME of root): a read-only
volume over the image's own /root, which therefore keeps its content in every layer."""
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Pins:
    """What the base Containerfile pins: the Python version and its source zip's hashes."""

    python_version: str
    zip_sha256: str
    zip_h1: str


@dataclass(frozen=True)
class Storage:
    """buildah's image store, kept in the cache (never /var/lib/containers)."""

    root: Path
    runroot: Path
    driver: str = STORAGE_DRIVER


# -- pure ----------------------------------------------------------------------------
def read_pins(containerfile: str) -> Pins:
    """``ENV PYTHON_VERSION=``, ``ARG CPYTHON_ZIP_SHA256=`` and ``ARG CPYTHON_ZIP_H1=``."""

    def value(instruction: str, name: str) -> str:
        found = re.findall(rf"^{instruction}\s+{name}=(\S+)\s*$", containerfile, re.MULTILINE)
        if len(found) != 1:
            raise ValueError(f"the base Containerfile needs exactly one `{instruction} {name}=...`")
        return found[0]

    return Pins(
        value("ENV", "PYTHON_VERSION"), value("ARG", "CPYTHON_ZIP_SHA256"), value("ARG", "CPYTHON_ZIP_H1")
    )


def cpython_zip_url(version: str) -> str:
    """The Go module proxy's zip of CPython's tag (a module without go.mod: +incompatible)."""
    return f"{GO_PROXY}/{CPYTHON_MODULE}/@v/v{version}+incompatible.zip"


def go_module_h1(files: Iterable[tuple[str, bytes]]) -> str:
    """The Go checksum database's ``h1:`` hash of a module zip (golang.org/x/mod's
    dirhash Hash1): sha256 over the lines ``<sha256 hex>  <name>``, in the order of the names."""
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files)]
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def security_mirror(mirror: str) -> str:
    """Debian's security archive beside ``mirror`` (deb.debian.org/debian -> .../debian-security)."""
    return mirror + "-security" if mirror.endswith("/debian") else "http://deb.debian.org/debian-security"


def debian_sources(mirror: str, suite: str) -> str:
    """deb822 sources as Debian's own image has them: the release, its updates, security."""
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    return (
        f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\nSigned-By: {keyring}\n\n"
        f"Types: deb\nURIs: {security_mirror(mirror)}\nSuites: {suite}-security\nComponents: main\n"
        f"Signed-By: {keyring}\n"
    )


def rootfs_files(mirror: str, suite: str) -> dict[str, str]:
    """Files written into the debootstrap rootfs before it becomes the base's first layer."""
    return {
        "etc/apt/sources.list.d/debian.sources": debian_sources(mirror, suite),
        "etc/dpkg/dpkg.cfg.d/kubernel-slim": DPKG_SLIM,
        "etc/apt/apt.conf.d/kubernel-slim": APT_SLIM,
    }


def base_inputs_digest(
    containerfile: bytes,
    debian: imagebuild.DebianBase,
    files: Mapping[str, str],
    build_args: Mapping[str, str],
    recipe: str,
) -> str:
    """Everything that decides the base image: its Containerfile (which pins the CPython
    zip), the Debian bootstrap, the files added to it, the build arguments and the code
    that makes the build context. Not the mirror: the same packages either way."""
    h = hashlib.sha256()
    parts = {
        "containerfile": containerfile,
        "debian": json.dumps(dataclasses.asdict(debian), sort_keys=True).encode(),
        "files": json.dumps(dict(files), sort_keys=True).encode(),
        "args": json.dumps(dict(build_args), sort_keys=True).encode(),
        "recipe": recipe.encode(),
    }
    for label, data in parts.items():
        h.update(f"{label}\0{len(data)}\0".encode() + data)  # length-prefixed: no two sets collide
    return h.hexdigest()[:16]


def base_image_name(python_version: str, digest: str) -> str:
    return f"{BASE_REPOSITORY}:{python_version}-{digest}"


def local_service_name(tag: str) -> str:
    return f"localhost/{SERVICE_REPOSITORY}:{tag}"


def buildah_argv(storage: Storage, *args: str) -> list[str]:
    """buildah with its store under the cache."""
    return [
        "buildah",
        "--root",
        str(storage.root),
        "--runroot",
        str(storage.runroot),
        "--storage-driver",
        storage.driver,
        *args,
    ]


def pip_conf(cert: str) -> str:
    """pip's user configuration in the build: trust the CA bundle at ``cert``."""
    return f"[global]\ncert = {cert}\n"


def bud_argv(
    storage: Storage,
    containerfile: Path,
    context: Path,
    name: str,
    build_args: Mapping[str, str],
    build_home: Path,
) -> list[str]:
    """``buildah bud`` as this machine allows: chroot isolation (no runc, no user
    namespaces needed), never a pull (the base is local; Docker Hub is unreachable),
    every layer cached, no container left behind by a failed step, and ``build_home``
    as root's home in RUN steps: pip trusts this machine's CAs there (its TLS may be
    intercepted by a CA only the host knows), and nothing of it lands in a layer."""
    args = [f"--build-arg={key}={value}" for key, value in sorted(build_args.items())]
    return buildah_argv(
        storage,
        "bud",
        "--isolation",
        "chroot",
        "--pull=never",
        "--layers",
        "--force-rm",
        f"--volume={build_home}:{BUILD_HOME}:ro",
        *args,
        "--file",
        str(containerfile),
        "--tag",
        name,
        str(context),
    )


def push_argv(storage: Storage, name: str, registry: str, repository_tag: str, digestfile: Path) -> list[str]:
    """Plain HTTP to the registry on loopback; the manifest digest is written to ``digestfile``."""
    return buildah_argv(
        storage,
        "push",
        "--tls-verify=false",
        "--digestfile",
        str(digestfile),
        name,
        f"docker://{registry}/{repository_tag}",
    )


def pinned_reference(digest: str) -> str:
    """The name the kubelet pulls (containerd maps the registry host to loopback), by digest."""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"not a manifest digest: {digest!r}")
    return f"{node.REGISTRY_HOST}/{SERVICE_REPOSITORY}@{digest}"


def manifest_size(manifest: Mapping[str, Any]) -> int:
    """The configuration and every layer: in the registry's manifest the bytes a pull
    downloads (gzip), in buildah's local one the unpacked size (plain tar layers)."""
    blobs = [manifest["config"], *manifest["layers"]]
    return sum(int(blob["size"]) for blob in blobs)


def format_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def base_names_to_remove(names: Iterable[str], keep: str) -> list[str]:
    """Older builds of the base (another digest): their layers are dead weight."""
    return sorted(n for n in names if n.startswith(BASE_REPOSITORY + ":") and n != keep)


# -- I/O -----------------------------------------------------------------------------
def storage_of(settings: TestbedSettings) -> Storage:
    root = settings.cache_dir / "buildah"
    return Storage(root=root / "root", runroot=root / "runroot")


def _work_dir(settings: TestbedSettings) -> Path:
    return settings.cache_dir / "service-image"


def _require_buildah() -> None:
    if shutil.which("buildah") is None:
        raise RuntimeError(
            "`make image` needs buildah (Debian package `buildah`): run `make node-packages` "
            "as root, or `apt-get install buildah`"
        )
    if os.geteuid() != 0:
        raise RuntimeError(
            "`make image` needs root: buildah's chroot isolation mounts /proc and /dev "
            "into the build, and the layers keep their files' owners"
        )


def _run_logged(argv: list[str], log: Path, say: Say) -> None:
    """A long build: its output goes to ``log``, with a progress line every 30 s."""
    run_logged(argv, log, f"buildah {log.stem}", say)


def _unmount_all(storage: Storage) -> None:
    """After a build, good or bad: no container of ours stays mounted."""
    subprocess.run(buildah_argv(storage, "umount", "--all"), capture_output=True)


def _image_exists(storage: Storage, name: str) -> bool:
    return (
        subprocess.run(
            buildah_argv(storage, "inspect", "--type", "image", name), capture_output=True
        ).returncode
        == 0
    )


def _image_names(storage: Storage) -> list[str]:
    out = imagebuild._run(*buildah_argv(storage, "images", "--json"))
    return [name for image in json.loads(out or "[]") for name in image.get("names") or []]


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One build at a time per cache (two `make image`, or make deploy beside it)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _download(url: str, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    partial.rename(target)


def verify_zip(path: Path, pins: Pins) -> None:
    """The zip is the one pinned: its sha256, and the h1 hash the Go checksum database
    publishes for the module version (the same tree, whoever served the zip)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pins.zip_sha256:
        raise RuntimeError(f"{path}: sha256 {digest}, the Containerfile pins {pins.zip_sha256}")
    with zipfile.ZipFile(path) as archive:
        h1 = go_module_h1((name, archive.read(name)) for name in archive.namelist())
    if h1 != pins.zip_h1:
        raise RuntimeError(f"{path}: {h1}, the Go checksum database says {pins.zip_h1}")


def ensure_cpython_zip(settings: TestbedSettings, pins: Pins, say: Say) -> Path:
    """CPython's source, downloaded once into the cache and verified at every use."""
    path = _work_dir(settings) / "downloads" / f"cpython-{pins.python_version}.zip"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        say(f"downloading {cpython_zip_url(pins.python_version)}")
        _download(cpython_zip_url(pins.python_version), path)
    try:
        verify_zip(path, pins)
    except RuntimeError:
        path.unlink()  # a corrupt or stale download must not stick: the next run fetches again
        raise
    return path


def _debian_tar(rootfs: Path, target: Path, files: Mapping[str, str]) -> None:
    """The cached debootstrap rootfs, slimmed like imagebuild's kernel image and given
    Debian's sources and our slim rules, as the tar the Containerfile ADDs."""
    work = target.parent / "rootfs"
    imagebuild._remove_tree(work)
    imagebuild._run("cp", "-a", "--reflink=auto", rootfs, work)
    try:
        imagebuild._slim(work)
        (work / "etc/apt/sources.list").unlink(missing_ok=True)  # debootstrap's: one suite, no security
        for relative, content in files.items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_text(content)
        imagebuild._run("tar", "--numeric-owner", "--xattrs", "-C", work, "-cf", target, ".")
    finally:
        imagebuild._remove_tree(work)


def _build_home(settings: TestbedSettings) -> Path:
    """A home for the build's root: pip's configuration and this machine's CA bundle."""
    home = _work_dir(settings) / "build-home"
    (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    shutil.copyfile(HOST_CA_BUNDLE, home / "ca-certificates.crt")
    (home / ".config" / "pip" / "pip.conf").write_text(pip_conf(f"{BUILD_HOME}/ca-certificates.crt"))
    return home


def _recipe() -> str:
    """The code that shapes the base's build context (not the rest of this module: a
    change to the push must not recompile Python)."""
    return "".join(inspect.getsource(f) for f in (_debian_tar, imagebuild._slim, bud_argv))


def _base_build_args() -> dict[str, str]:
    return {"PYTHON_OPTIMIZE": "1" if os.environ.get("KUBERNEL_PYTHON_OPTIMIZE") == "1" else "0"}


def ensure_base(settings: TestbedSettings, say: Say, step: Callable[[], str]) -> str:
    """The local python base image, built when no image of its inputs' digest exists."""
    storage = storage_of(settings)
    containerfile = BASE_CONTAINERFILE.read_bytes()
    pins = read_pins(containerfile.decode())
    mirror = imagebuild.debian_mirror(DEBIAN.suite)
    files = rootfs_files(mirror, DEBIAN.suite)
    args = _base_build_args()
    name = base_image_name(
        pins.python_version, base_inputs_digest(containerfile, DEBIAN, files, args, _recipe())
    )

    started = time.monotonic()
    say(f"[image {step()}] CPython {pins.python_version} source (Go module proxy zip, sha256 + h1 checked)")
    zip_path = ensure_cpython_zip(settings, pins, say)
    say(f"[image {step()}] Debian {DEBIAN.suite} rootfs (debootstrap, cached by imagebuild)")
    rootfs = imagebuild._debian_rootfs(DEBIAN, _work_dir(settings) / "debootstrap", "", say)
    if _image_exists(storage, name):
        say(f"[image {step()}] {name}: cached")
        return name
    say(
        f"[image {step()}] {name}: building (Debian layers, CPython compile: about 3 minutes on 2 cores, once)"
    )
    context = _work_dir(settings) / "base-context"
    imagebuild._remove_tree(context)
    context.mkdir(parents=True)
    try:
        _debian_tar(rootfs, context / DEBIAN_TAR, files)
        shutil.copyfile(zip_path, context / CPYTHON_ZIP)
        _run_logged(
            bud_argv(storage, BASE_CONTAINERFILE, context, name, args, _build_home(settings)),
            _work_dir(settings) / "logs" / "python-base.log",
            say,
        )
    finally:
        _unmount_all(storage)
        imagebuild._remove_tree(context)
    _drop_old_bases(storage, name)
    say(f"[image] {name}: built in {imagebuild.format_duration(time.monotonic() - started)}")
    return name


def _drop_old_bases(storage: Storage, keep: str) -> None:
    """Old bases go, and with them the layer cache built on them (dangling images)."""
    old = base_names_to_remove(_image_names(storage), keep)
    if old:
        imagebuild._run(*buildah_argv(storage, "rmi", *old))
        subprocess.run(buildah_argv(storage, "rmi", "--prune"), capture_output=True)


def build(settings: TestbedSettings, say: Say, tag: str = DEFAULT_TAG, steps: int = 4) -> str:
    """The base (cached), then the Dockerfile on it. Returns the local image name."""
    _require_buildah()
    with _locked(_work_dir(settings)):
        return _build_locked(settings, say, tag, steps)


def _build_locked(settings: TestbedSettings, say: Say, tag: str, steps: int) -> str:
    counter = iter(f"{n}/{steps}" for n in range(1, steps + 1))
    storage = storage_of(settings)
    base = ensure_base(settings, say, lambda: next(counter))
    name = local_service_name(tag)
    started = time.monotonic()
    say(f"[image {next(counter)}] {name}: buildah bud Dockerfile (PYTHON_IMAGE={base})")
    try:
        _run_logged(
            bud_argv(storage, DOCKERFILE, REPO_ROOT, name, {"PYTHON_IMAGE": base}, _build_home(settings)),
            _work_dir(settings) / "logs" / "service.log",
            say,
        )
    finally:
        _unmount_all(storage)
    say(f"[image] {name}: done in {imagebuild.format_duration(time.monotonic() - started)}")
    return name


def registry_address(settings: TestbedSettings) -> str | None:
    """HOST:PORT of the running test bed's registry, or None when it does not answer."""
    try:
        layout = Layout(state=settings.state_dir, bin=bin_dir(settings.cache_dir))
        address = node.registry_address(realnode.node_ports(layout))
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as response:
            return address if response.status == 200 else None
    except (OSError, ValueError, TypeError, urllib.error.URLError):
        return None


def _manifest(registry: str, digest: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{registry}/v2/{SERVICE_REPOSITORY}/manifests/{digest}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _local_manifest(storage: Storage, name: str) -> dict[str, object]:
    return json.loads(
        imagebuild._run(
            *buildah_argv(storage, "inspect", "--type", "image", "--format", "{{.Manifest}}", name)
        )
    )


def _no_registry_message(settings: TestbedSettings) -> str:
    return (
        f"the test bed's registry is not up (no answer from the real node in {settings.state_dir}): "
        "start it with `make cluster`, or only build: "
        "`.venv/bin/python -m kubernel_testbed.serviceimage build`"
    )


def push(settings: TestbedSettings, say: Say, name: str, tag: str, registry: str) -> str:
    """The built image to ``<registry>/kubernel/kubernel:<tag>``; returns the pinned reference."""
    storage = storage_of(settings)
    digestfile = _work_dir(settings) / "pushed.digest"
    imagebuild._run(*push_argv(storage, name, registry, f"{SERVICE_REPOSITORY}:{tag}", digestfile))
    digest = digestfile.read_text().strip()
    compressed = manifest_size(_manifest(registry, digest))
    unpacked = manifest_size(_local_manifest(storage, name))
    say(
        f"[image] pushed {node.REGISTRY_HOST}/{SERVICE_REPOSITORY}:{tag} = {digest} "
        f"({format_size(compressed)} compressed, {format_size(unpacked)} unpacked)"
    )
    return pinned_reference(digest)


def ensure_service_image(settings: TestbedSettings, say: Say, tag: str = DEFAULT_TAG) -> str:
    """Build what changed and push it to the running test bed; returns
    ``registry.kubernel.test/kubernel/kubernel@sha256:...`` for a chart to pin.
    Raises RuntimeError when buildah or the test bed's registry is missing."""
    _require_buildah()
    registry = registry_address(settings)
    if registry is None:
        raise RuntimeError(_no_registry_message(settings))
    started = time.monotonic()
    # One lock over both: another build of the same tag (a second clone sharing the
    # cache) cannot slip in between, so what is pushed is what was just built.
    with _locked(_work_dir(settings)):
        name = _build_locked(settings, say, tag, steps=5)
        say(f"[image 5/5] push to the test bed's registry ({registry})")
        reference = push(settings, say, name, tag, registry)
    say(f"[image] done in {imagebuild.format_duration(time.monotonic() - started)}: {reference}")
    return reference


def _say(message: str) -> None:
    print(f"{message}  ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubernel_testbed.serviceimage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("build", "push"))
    parser.add_argument("--tag", default=DEFAULT_TAG, help="the tag of kubernel/kubernel (default: dev)")
    args = parser.parse_args(argv)
    settings = TestbedSettings.from_env()
    try:
        if args.command == "build":
            print(build(settings, _say, args.tag))
        else:
            print(ensure_service_image(settings, _say, args.tag))
    except RuntimeError as error:
        print(f"[image] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
