"""Traefik as the test bed's ingress controller, on the real node.

Traefik is built from its Go module into ``kubernel/traefik:<version>`` (an
on-demand image of ``imagebuild``: compiled the first time something installs it,
cached by its inputs after that) and runs as one Deployment in ``kubernel-ingress``
with only its ``kubernetesIngress`` provider, serving Ingresses of the IngressClass
``traefik``. The host reaches it at a fixed URL, ``http://10.246.0.1`` (the node
address, port 80): the container listens on an unprivileged port, and the CNI
``portmap`` plugin of the real node maps the hostPort on the node address to it.

The builders below are pure (manifests as dicts); ``install`` and ``uninstall``
do the I/O. See docs/ingress.md.

    python -m kubernel_testbed.ingress install | uninstall
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import imagebuild, node, realnode
from .components import Layout
from .polling import say as testbed_say
from .polling import wait_for
from .settings import TestbedSettings, bin_dir

NAMESPACE = "kubernel-ingress"
NAME = "traefik"
INGRESS_CLASS = "traefik"
CONTROLLER = "traefik.io/ingress-controller"
IMAGE = f"{node.REGISTRY_HOST}/{imagebuild.TRAEFIK.reference}"
HOST_PORT = 80
"""The entry point's port on the node address: port 80, so the URL and the Host header
carry no port. Only a DNAT rule for the node address: nothing binds port 80 on the host."""
WEB_PORT = 8000
"""Where Traefik listens in its Pod: unprivileged, so it runs without NET_BIND_SERVICE."""
PING_PORT = 8082
"""Traefik's own entry point for /ping (the probes): not exposed, no routes of Ingresses."""
RUN_AS = 65532
LABELS = {
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/component": "ingress-controller",
    "app.kubernetes.io/managed-by": "kubernel-testbed",
}
SELECTOR = {"app.kubernetes.io/name": NAME}

Say = Callable[[str], None]
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Timeouts:
    """Traefik's timeouts for long-lived event streams (its static configuration).

    A stream is one request whose response never ends; the API sends a comment every
    15 s. Traefik's defaults (v3.6): readTimeout 60s, writeTimeout 0, idleTimeout 180s,
    dialTimeout 30s, responseHeaderTimeout 0, idleConnTimeout 90s. All are set
    explicitly so an upgrade that changes a default cannot cut streams silently.
    """

    read: str = "60s"
    """Reading the whole request, body included (Go's ReadTimeout). It does not limit
    the response: net/http clears the read deadline once a body-less request is read."""
    write: str = "0s"
    """0: none. A write timeout is a deadline on the whole response: it would end
    every event stream at that age, however busy."""
    idle: str = "180s"
    """A keep-alive client connection between requests (not a stream in progress)."""
    dial: str = "30s"
    response_header: str = "0s"
    """0: none. The API answers some calls only when a session is ready (POST /kernel
    waits for RUNNING), and a stream's headers come when its first event is ready."""
    idle_conn: str = "90s"
    """A pooled idle connection to a backend."""


# -- pure ----------------------------------------------------------------------------
def entry_url(node_ip: str = node.NODE_IP, port: int = HOST_PORT) -> str:
    """The URL the host reaches the entry point at (no port when it is 80)."""
    return f"http://{node_ip}" if port == 80 else f"http://{node_ip}:{port}"


def traefik_args(node_ip: str = node.NODE_IP, timeouts: Timeouts = Timeouts()) -> list[str]:
    """Traefik's static configuration, as command-line flags (no ConfigMap to keep in step)."""
    web = "--entrypoints.web"
    transport = "--serverstransport.forwardingtimeouts"
    return [
        f"{web}.address=:{WEB_PORT}/tcp",
        # Ingress routes on this entry point only, not also on the ping one (Traefik's default: all).
        f"{web}.asdefault=true",
        f"{web}.transport.respondingtimeouts.readtimeout={timeouts.read}",
        f"{web}.transport.respondingtimeouts.writetimeout={timeouts.write}",
        f"{web}.transport.respondingtimeouts.idletimeout={timeouts.idle}",
        f"--entrypoints.traefik.address=:{PING_PORT}/tcp",
        "--ping=true",
        "--ping.entrypoint=traefik",
        f"{transport}.dialtimeout={timeouts.dial}",
        f"{transport}.responseheadertimeout={timeouts.response_header}",
        f"{transport}.idleconntimeout={timeouts.idle_conn}",
        "--providers.kubernetesingress=true",
        # Only Ingresses of our class: without it Traefik also takes every Ingress with no class.
        f"--providers.kubernetesingress.ingressclass={INGRESS_CLASS}",
        # Written into the Ingresses' status: `kubectl get ingress` shows where to connect.
        f"--providers.kubernetesingress.ingressendpoint.ip={node_ip}",
        # The machine reaches no outside service: no update check, no usage reports.
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        "--log.level=INFO",
        "--log.nocolor=true",  # a log file, not a terminal
        "--accesslog=true",
    ]


def _meta(name: str, namespaced: bool = True) -> Manifest:
    meta: Manifest = {"name": name, "labels": dict(LABELS)}
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def namespace_manifest() -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, namespaced=False)}


def service_account() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(NAME),
        "automountServiceAccountToken": True,
    }


def cluster_role() -> Manifest:
    """What the kubernetesIngress provider reads and writes. Secrets: its informer
    watches them (TLS certificates of Ingresses) and cannot be turned off, so it
    must list them; nodes: it lists them with the IngressClasses (nodePort LB)."""
    read = ["get", "list", "watch"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(f"{NAMESPACE}-{NAME}", namespaced=False),
        "rules": [
            {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
        ],
    }


def cluster_role_binding() -> Manifest:
    name = f"{NAMESPACE}-{NAME}"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name, namespaced=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def ingress_class() -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": _meta(INGRESS_CLASS, namespaced=False),
        "spec": {"controller": CONTROLLER},
    }


def _probe(period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": "/ping", "port": "ping"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def deployment(
    image: str = IMAGE,
    node_ip: str = node.NODE_IP,
    host_port: int = HOST_PORT,
    timeouts: Timeouts = Timeouts(),
) -> Manifest:
    """One Traefik on the real node, non-root, read-only root filesystem, no capabilities.
    Recreate, not a rolling update: two Pods cannot hold the same hostPort on one node."""
    container = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": traefik_args(node_ip, timeouts),
        "ports": [
            {
                "name": "web",
                "containerPort": WEB_PORT,
                "hostPort": host_port,
                "hostIP": node_ip,
                "protocol": "TCP",
            },
            {"name": "ping", "containerPort": PING_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": _probe(period=2, failures=1),
        "livenessProbe": _probe(period=10, failures=3),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Traefik writes nothing but may need a scratch directory; the root stays read-only.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "serviceAccountName": NAME,
                    "nodeSelector": {node.REAL_NODE_LABEL: "true"},
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def manifests(
    image: str = IMAGE,
    node_ip: str = node.NODE_IP,
    host_port: int = HOST_PORT,
    timeouts: Timeouts = Timeouts(),
) -> list[Manifest]:
    """Everything ``install`` makes, in the order it applies them."""
    return [
        namespace_manifest(),
        service_account(),
        cluster_role(),
        cluster_role_binding(),
        ingress_class(),
        deployment(image, node_ip, host_port, timeouts),
    ]


def cluster_scoped() -> list[str]:
    """``kind/name`` of what ``install`` makes outside its namespace, and the namespace:
    gone, they mean everything is (the namespace goes last, with its Pods)."""
    return [
        f"{m['kind'].lower()}/{m['metadata']['name']}"
        for m in manifests()
        if "namespace" not in m["metadata"]
    ]


def users(ingresses: list[Manifest], terminating: set[str]) -> list[str]:
    """``namespace/name`` of the Ingresses Traefik serves (class ``traefik`` by name or
    by the old annotation), but for those in namespaces being deleted: while there are
    some, removing Traefik cuts someone off (``make deploy``'s API, a test's backend)."""
    return [
        f"{i['metadata']['namespace']}/{i['metadata']['name']}"
        for i in ingresses
        if i["metadata"]["namespace"] not in terminating
        and INGRESS_CLASS
        in (
            i.get("spec", {}).get("ingressClassName"),
            i["metadata"].get("annotations", {}).get("kubernetes.io/ingress.class"),
        )
    ]


def deployment_ready(status: Manifest, generation: int) -> bool:
    """The Deployment's current generation rolled out with its one Pod Ready."""
    return (
        int(status.get("observedGeneration", 0)) >= generation
        and status.get("readyReplicas", 0) == 1
        and status.get("updatedReplicas", 0) == 1
        and status.get("replicas", 0) == 1
    )


# -- I/O -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Cluster:
    """The test bed to act on: its kubectl, kubeconfig and real node."""

    settings: TestbedSettings
    kubeconfig: Path

    @classmethod
    def from_env(cls, kubeconfig: str | Path | None = None) -> Cluster:
        settings = TestbedSettings.from_env()
        return cls(settings, Path(kubeconfig) if kubeconfig else settings.kubeconfig)

    @property
    def layout(self) -> Layout:
        return Layout(state=self.settings.state_dir, bin=bin_dir(self.settings.cache_dir))

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.layout.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {done.stderr.strip()}")
        return done

    def registry(self) -> str:
        """HOST:PORT of the real node's registry (its port changes with each test bed start)."""
        try:
            return node.registry_address(realnode.node_ports(self.layout))
        except FileNotFoundError:
            raise RuntimeError(
                "Traefik runs on the test bed's real node, which is not running here "
                "(`make cluster` with KUBERNEL_REAL_NODE=1)"
            ) from None


def _manifest_list(items: list[Manifest]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _answers(url: str) -> bool:
    """Traefik answers at the entry point: 404 for a path no Ingress routes is an answer."""
    try:
        with urllib.request.urlopen(url + "/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True


def ensure_image(cluster: Cluster, say: Say) -> str:
    """Build Traefik's image if its inputs changed (minutes, once), push it if the
    registry lacks it. Returns the reference the node pulls, pinned to the digest: a
    rebuilt image under the same tag changes the Deployment, and the node pulls it
    (IfNotPresent would keep running the old one)."""
    layout = imagebuild.ensure_built(cluster.settings.cache_dir, say, specs=(imagebuild.TRAEFIK,))
    registry = cluster.registry()
    digest = imagebuild.push(layout, registry, say, specs=(imagebuild.TRAEFIK,))[
        imagebuild.registry_reference(registry, imagebuild.TRAEFIK)
    ]
    return f"{IMAGE}@{digest}"


def install(kubeconfig: str | Path | None = None, say: Say = testbed_say, timeout: float = 120) -> str:
    """Traefik on the real node: image built and pushed if needed, objects applied,
    the Deployment Ready and the entry point answering within ``timeout`` seconds
    (after the build). Returns the entry URL. Idempotent."""
    cluster = Cluster.from_env(kubeconfig)
    say(f"ingress 1/3: the image {imagebuild.TRAEFIK.reference}")
    image = ensure_image(cluster, say)
    say(f"ingress 2/3: applying Traefik in {NAMESPACE} (IngressClass {INGRESS_CLASS})")
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=kubernel-testbed",
        "-f",
        "-",
        stdin=_manifest_list(manifests(image)),
    )
    url = entry_url()
    say(f"ingress 3/3: waiting for Traefik Ready and answering at {url}")
    started = time.monotonic()

    def ready() -> bool:
        found = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "deployment", NAME, "-o", "json").stdout)
        return deployment_ready(found.get("status", {}), found["metadata"]["generation"]) and _answers(url)

    try:
        wait_for(f"Traefik in {NAMESPACE}", ready, timeout=timeout, interval=0.5)
    except TimeoutError as exc:
        pods = cluster.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        raise TimeoutError(f"{exc}\n{pods}") from None
    say(f"ingress ready in {time.monotonic() - started:.1f}s: {url} (IngressClass {INGRESS_CLASS})")
    return url


def installed(kubeconfig: str | Path | None = None) -> bool:
    """Traefik's Deployment exists (``make deploy`` or a test installed it)."""
    cluster = Cluster.from_env(kubeconfig)
    return not _gone(cluster, "-n", NAMESPACE, f"deployment/{NAME}")


def _gone(cluster: Cluster, *args: str) -> bool:
    done = cluster.kubectl("get", *args, "--ignore-not-found", "-o", "name", check=False)
    return done.returncode == 0 and not done.stdout.strip()


def in_use(kubeconfig: str | Path | None = None) -> list[str]:
    """The Ingresses that would lose their route if Traefik went (see ``users``)."""
    cluster = Cluster.from_env(kubeconfig)
    ingresses = json.loads(cluster.kubectl("get", "ingresses", "--all-namespaces", "-o", "json").stdout)[
        "items"
    ]
    namespaces = json.loads(cluster.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
    terminating = {
        n["metadata"]["name"] for n in namespaces if n.get("status", {}).get("phase") == "Terminating"
    }
    return users(ingresses, terminating)


def uninstall(
    kubeconfig: str | Path | None = None, say: Say = testbed_say, timeout: float = 120, force: bool = False
) -> None:
    """Delete everything ``install`` made and wait until it is gone (the namespace and
    its Pod included). The image stays in the registry and the build cache. Refuses
    while Ingresses of class traefik use it (the test bed is shared), unless ``force``."""
    cluster = Cluster.from_env(kubeconfig)
    using = in_use(kubeconfig)
    if using and not force:
        raise RuntimeError(
            f"Ingresses of class {INGRESS_CLASS} still use Traefik: {', '.join(using)}; "
            "delete them first (make undeploy), or force"
        )
    say(f"ingress: deleting Traefik, {NAMESPACE} and the IngressClass {INGRESS_CLASS}")
    cluster.kubectl(
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        stdin=_manifest_list(list(reversed(manifests()))),
    )
    left = cluster_scoped()
    wait_for(
        "the ingress objects gone",
        lambda: all(_gone(cluster, o) for o in left),
        timeout=timeout,
        interval=0.5,
    )
    say("ingress: removed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubernel_testbed.ingress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["install", "uninstall"])
    parser.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG, else the test bed's"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for Ready or gone")
    parser.add_argument(
        "--force", action="store_true", help="uninstall even while Ingresses of class traefik exist"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(install(args.kubeconfig, timeout=args.timeout))
        else:
            uninstall(args.kubeconfig, timeout=args.timeout, force=args.force)
    except (RuntimeError, TimeoutError) as exc:
        testbed_say(f"ingress {args.command} failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
