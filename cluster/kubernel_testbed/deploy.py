"""`make deploy`: the Helm chart on the test bed's real node, as a platform team installs it.

The operator and the API run as Pods from the service image (built without Docker and
pushed to the local registry, ``serviceimage``), behind Traefik (``ingress``), with the
kernel image table of ``make run`` (``cluster/images.dev.yaml``). The chart is installed
as release ``kubernel`` in namespace ``kubernel``; the bootstrap keypair of its Secret and
the ingress's address are written to ``.local/deploy.env`` for the client and the CLI.

``undeploy`` is the README's uninstall story, in order: the sessions are deleted while
the operator still runs (it ends them and removes their finalizers), ``helm uninstall``,
the finalizer removed by hand from any session left without an operator (after a bare
``helm uninstall``; their Pods follow by owner reference), then the namespace. The CRD
stays, as Helm leaves it (other releases may use it).

    python -m kubernel_testbed.deploy up | down | build
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import imagebuild, ingress, node, serviceimage
from .launcher import Testbed, external_cluster_reachable
from .polling import say, wait_for
from .settings import REPO_ROOT, TestbedSettings

RELEASE = "kubernel"
NAMESPACE = "kubernel"
KEYPAIR_NAMESPACE = f"{NAMESPACE}-keypairs"  # the chart's default: keypairs live apart
SESSION_NAMESPACE = f"{NAMESPACE}-sessions"  # and sessions too, enforcing the restricted profile
CHART = REPO_ROOT / "helm" / "kubernel"
DEV_IMAGE_TABLE = REPO_ROOT / "cluster" / "images.dev.yaml"
TRAEFIK_VALUES = REPO_ROOT / "helm" / "examples" / "ingress-traefik.yaml"
ENV_FILE = REPO_ROOT / ".local" / "deploy.env"
BOOTSTRAP_SECRET = f"{RELEASE}-bootstrap-keypair"
"""The chart's `<fullname>-bootstrap-keypair`; the release name contains the chart name,
so the full name is the release name."""
HELM_TIMEOUT = "5m"


@dataclass(frozen=True)
class Deployment:
    """What a client needs: where the API is and the bootstrap keypair."""

    endpoint: str
    image: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        return {
            "BACKEND_ENDPOINT": self.endpoint,
            "BACKEND_ACCESS_KEY": self.access_key,
            "BACKEND_SECRET_KEY": self.secret_key,
            "BACKEND_ENDPOINT_TYPE": "api",
        }


# -- pure ----------------------------------------------------------------------------
def split_image(reference: str) -> tuple[str, str]:
    """``repo@sha256:..`` -> (repo, digest): the chart pins the image by digest."""
    repository, at, digest = reference.partition("@")
    if not at or not digest.startswith("sha256:"):
        raise ValueError(f"expected an image reference pinned by digest, got {reference!r}")
    return repository, digest


def chart_values(
    image: str, image_table: Mapping[str, Any], ingress_values: Mapping[str, Any]
) -> dict[str, Any]:
    """The values `make deploy` installs the chart with (everything else: the chart's defaults).
    ``ingress_values``: the README's Traefik example (no DNS here: its rule has no host, so
    the ingress's address is the endpoint). The cluster DNS is CoreDNS on the node's
    address here, not a Pod in kube-system: the kernels' NetworkPolicy names it so."""
    repository, digest = split_image(image)
    return {
        "image": {"repository": repository, "digest": digest, "pullPolicy": "IfNotPresent"},
        "images": dict(image_table),
        "ingress": dict(ingress_values),
        "networkPolicy": {"dns": [{"ipBlock": {"cidr": f"{node.NODE_IP}/32"}}]},
    }


def helm_upgrade_command(helm: Path, kubeconfig: Path, values_file: Path) -> list[str]:
    return [
        str(helm),
        f"--kubeconfig={kubeconfig}",
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--values",
        str(values_file),
        "--wait",
        f"--timeout={HELM_TIMEOUT}",
    ]


def env_file_text(deployment: Deployment) -> str:
    lines = [f"export {key}={value}" for key, value in deployment.env().items()]
    return "# Written by `make deploy`: the chart's API through the ingress.\n" + "\n".join(lines) + "\n"


def decode_keypair(secret: Mapping[str, Any]) -> tuple[str, str]:
    data = secret["data"]
    return (base64.b64decode(data["access-key"]).decode(), base64.b64decode(data["secret-key"]).decode())


# -- I/O -----------------------------------------------------------------------------
class DeployError(RuntimeError):
    """A step of deploy or undeploy failed; the message carries the tool's own words."""


def _kubectl(bed: Testbed, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(bed.layout.bin / "kubectl"), f"--kubeconfig={bed.layout.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise DeployError(
            f"kubectl {' '.join(args[:4])} ... failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done


def _require_real_node(bed: Testbed) -> None:
    if not bed.settings.real_node:
        raise DeployError("make deploy needs the test bed's real node (KUBERNEL_REAL_NODE=1)")
    if not bed.running():
        raise DeployError("the test bed is not running: `make cluster` starts it (make deploy does)")


def deploy(bed: Testbed) -> Deployment:
    _require_real_node(bed)
    say("[deploy 1/4] the service image (built without Docker, pushed to the local registry)")
    image = serviceimage.ensure_service_image(bed.settings, say)
    say("[deploy 2/4] the ingress controller (Traefik) on the real node")
    endpoint = ingress.install(bed.layout.kubeconfig, say)
    say(
        f"[deploy 3/4] helm upgrade --install {RELEASE} (namespace {NAMESPACE}, image {image}), "
        f"waiting up to {HELM_TIMEOUT} for the rollout"
    )
    table = yaml.safe_load(DEV_IMAGE_TABLE.read_text())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="kubernel-values-") as values:
        ingress_values = yaml.safe_load(TRAEFIK_VALUES.read_text())["ingress"]
        yaml.safe_dump(chart_values(image, table, ingress_values), values)
        values.flush()
        result = subprocess.run(
            helm_upgrade_command(bed.layout.bin / "helm", bed.layout.kubeconfig, Path(values.name)),
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise DeployError(f"helm upgrade failed:\n{result.stdout}{result.stderr}")
    say("[deploy 4/4] the bootstrap keypair, and the API through the ingress")
    secret = json.loads(
        _kubectl(bed, "-n", KEYPAIR_NAMESPACE, "get", "secret", BOOTSTRAP_SECRET, "-o", "json").stdout
    )
    access_key, secret_key = decode_keypair(secret)
    deployment = Deployment(endpoint, image, access_key, secret_key)
    wait_for(f"the API answering at {endpoint}/", lambda: _answers(endpoint), timeout=60, interval=0.5)
    write_private(ENV_FILE, env_file_text(deployment))
    return deployment


def write_private(path: Path, text: str) -> None:
    """A file of credentials, readable by its owner only from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _answers(endpoint: str) -> bool:
    """The API (not just the proxy) answers at the endpoint."""
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=5) as response:
            return json.load(response).get("version") == "v4.20190615"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def build_images(settings: TestbedSettings) -> None:
    """Every image the real node runs, built ahead without a cluster (`make test` does this
    before pytest, so no test waits minutes in a fixture): the node's own (which `up` would
    build), the service image and Traefik's."""
    if not settings.real_node or external_cluster_reachable():
        say(
            "no local real node (KUBERNEL_REAL_NODE=0 or KUBECONFIG names a cluster): the deploy images are not needed"
        )
        return
    say("[deploy images 1/3] the node's own images (pause, the Python kernel), which the test bed needs too")
    imagebuild.ensure_built(settings.cache_dir, say)
    say("[deploy images 2/3] the service image (the base's CPython compile runs once, then is cached)")
    serviceimage.build(settings, say)
    say("[deploy images 3/3] Traefik (compiled once, then cached)")
    imagebuild.ensure_built(settings.cache_dir, say, specs=(imagebuild.TRAEFIK,))


def undeploy(bed: Testbed) -> None:
    """The README's uninstall story; each step is a no-op when there is nothing to do, so
    it also cleans up after a bare `helm uninstall` (sessions left with their finalizer)."""
    if not bed.running():
        say("the test bed is not running: nothing to undeploy")
        return
    operator_runs = bool(
        _kubectl(
            bed,
            "-n",
            NAMESPACE,
            "get",
            "deployment",
            f"{RELEASE}-operator",
            "--ignore-not-found",
            "-o",
            "name",
            check=False,
        ).stdout.strip()
    )
    if operator_runs:
        say(
            f"[undeploy 1/4] ending the sessions in {SESSION_NAMESPACE} while the operator runs "
            "(Pods, lifecycle, finalizer)"
        )
        ended = _kubectl(
            bed,
            "-n",
            SESSION_NAMESPACE,
            "delete",
            "kernelsessions",
            "--all",
            "--wait",
            "--timeout=120s",
            check=False,
        )
        if ended.returncode != 0:  # a broken operator: step 3 removes what it left
            say(f"[undeploy 1/4] not all ended: {ended.stderr.strip()}")
    say(f"[undeploy 2/4] helm uninstall {RELEASE}")
    uninstalled = subprocess.run(
        [
            str(bed.layout.bin / "helm"),
            f"--kubeconfig={bed.layout.kubeconfig}",
            "uninstall",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--wait",
            "--timeout=120s",
            "--ignore-not-found",
        ],
        capture_output=True,
        text=True,
    )
    if uninstalled.returncode != 0:
        raise DeployError(f"helm uninstall failed: {uninstalled.stderr.strip()}")
    left = _kubectl(
        bed, "-n", SESSION_NAMESPACE, "get", "kernelsessions", "-o", "name", check=False
    ).stdout.split()
    say(
        f"[undeploy 3/4] sessions left without an operator: {len(left)} (finalizer removed; Pods follow by owner)"
    )
    for name in left:
        _kubectl(
            bed,
            "-n",
            SESSION_NAMESPACE,
            "patch",
            name,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )  # gone meanwhile is fine
    say(
        f"[undeploy 4/4] deleting namespaces {NAMESPACE}, {SESSION_NAMESPACE} and {KEYPAIR_NAMESPACE} (the chart "
        "keeps the sessions' and the keypairs' on uninstall; undeploy removes everything)"
    )
    _kubectl(
        bed,
        "delete",
        "namespace",
        NAMESPACE,
        SESSION_NAMESPACE,
        KEYPAIR_NAMESPACE,
        "--ignore-not-found",
        "--wait",
        "--timeout=120s",
    )
    ENV_FILE.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubernel_testbed.deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "build"])
    args = parser.parse_args(argv)
    bed = Testbed(TestbedSettings.from_env())
    try:
        if args.command == "build":
            build_images(bed.settings)
            return 0
        if args.command == "down":
            undeploy(bed)
            return 0
        deployment = deploy(bed)
    except (DeployError, RuntimeError, TimeoutError) as exc:
        say(f"failed: {exc}")
        return 1
    say(f"deployed: {deployment.endpoint} (credentials in {ENV_FILE.relative_to(REPO_ROOT)})")
    print(f"source {ENV_FILE.relative_to(REPO_ROOT)} && backend.ai run -c 'print(42)' python:3.6")
    return 0


if __name__ == "__main__":
    sys.exit(main())
