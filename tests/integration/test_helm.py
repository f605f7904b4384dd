"""`helm install` into the control plane, RBAC proven both ways, and the chart's
ServiceAccounts shown to be enough: the operator and the API run as real processes
with those accounts' tokens and serve a session end to end.

The chart's own Pods are simulated by KWOK (no container runs here), so the
services run beside the cluster with the identities the chart gives them. The
namespace is h-*, which the shared test operator (t-*) leaves alone.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client

from kubernel_api import keypairs as kp
from kubernel_testbed.node import SIMULATED_SCHEDULING
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.processes import REPO
from kubernel_testkit.waiting import wait_until

from .api_process import ApiProcess
from .operator_process import OperatorProcess

RELEASE = "kn"
FULLNAME = f"{RELEASE}-kubernel"
API_SA, OPERATOR_SA = f"{FULLNAME}-api", f"{FULLNAME}-operator"


@dataclass(frozen=True)
class Install:
    namespace: str
    kubeconfig: str
    kubectl: list[str]
    helm: list[str]

    def can_i(self, account: str, verb: str, resource: str, namespace: str | None = None) -> bool:
        """kubectl auth can-i as the ServiceAccount: exit 0 yes, 1 no. ``pods/log`` is
        the subresource (kubectl would read ``a/b`` as resource ``a`` named ``b``)."""
        kind, _, subresource = resource.partition("/")
        result = subprocess.run(
            [
                *self.kubectl,
                "auth",
                "can-i",
                verb,
                kind,
                *([f"--subresource={subresource}"] if subresource else []),
                "-n",
                namespace or self.sessions_namespace,
                f"--as=system:serviceaccount:{self.namespace}:{account}",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode in (0, 1), result.stderr
        return result.returncode == 0

    @property
    def keypair_namespace(self) -> str:
        return f"{self.namespace}-keypairs"  # the chart's default: keypairs live apart

    @property
    def sessions_namespace(self) -> str:
        return f"{self.namespace}-sessions"  # and sessions too, enforcing restricted

    def get(self, *args: str, namespace: str | None = None) -> dict:
        out = subprocess.run(
            [*self.kubectl, "get", *args, "-n", namespace or self.namespace, "-o", "json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out)

    def bootstrap_secret(self) -> dict:
        return self.get("secret", f"{FULLNAME}-bootstrap-keypair", namespace=self.keypair_namespace)


@pytest.fixture(scope="module")
def install(kubeconfig: str, kubectl_bin: str, helm_bin: str, crds: None) -> Iterator[Install]:
    namespace = f"h-{uuid.uuid4().hex[:10]}"
    kubectl = [kubectl_bin, f"--kubeconfig={kubeconfig}"]
    helm = [helm_bin, f"--kubeconfig={kubeconfig}", "-n", namespace]
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    # The service image is not in the test bed's registry: the chart's Pods, and the sessions
    # of its image table, go to the simulated nodes (values a platform team sets the same way).
    simulated = json.dumps(SIMULATED_SCHEDULING)
    placement = [
        f"--set-json={part}.{key}={json.dumps(SIMULATED_SCHEDULING[key])}"
        for part in ("api", "operator")
        for key in ("nodeSelector", "tolerations")
    ]
    result = subprocess.run(
        [
            *helm,
            "install",
            RELEASE,
            str(REPO / "helm" / "kubernel"),
            "--wait",
            "--timeout=120s",
            *placement,
            f"--set-json=images.scheduling={simulated}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BACKEND_ACCESS_KEY" in result.stdout, "NOTES.txt says where the credentials are"
    yield Install(namespace, kubeconfig, kubectl, helm)
    subprocess.run([*helm, "uninstall", RELEASE, "--wait", "--timeout=60s"], capture_output=True)
    subprocess.run(
        [*kubectl, "delete", "namespace", namespace, f"{namespace}-keypairs", "--wait=false"],
        capture_output=True,
    )


def test_the_release_is_up(install: Install) -> None:
    api = install.get("deployment", API_SA)
    assert api["status"].get("readyReplicas") == 2 == api["spec"]["replicas"]
    assert install.get("deployment", OPERATOR_SA)["status"].get("readyReplicas") == 1
    assert install.get("pdb", f"{FULLNAME}-api")["status"]["currentHealthy"] == 2
    assert install.get("service", f"{FULLNAME}-api")["spec"]["ports"][0]["targetPort"] == "http"
    peering = install.get("kopfpeering", FULLNAME, namespace=install.sessions_namespace)
    assert peering["metadata"]["name"] == FULLNAME
    keypair = kp.from_secret(install.bootstrap_secret())
    assert keypair.role is kp.Role.SUPERADMIN and keypair.active


# (ServiceAccount, verb, resource, in the sessions namespace?, allowed)
RBAC = [
    (API_SA, "create", "kernelsessions.kubernel.io", True, True),
    (API_SA, "watch", "kernelsessions.kubernel.io", True, True),
    (API_SA, "delete", "kernelsessions.kubernel.io", True, True),
    (API_SA, "patch", "kernelsessions.kubernel.io/status", True, True),
    (API_SA, "list", "secrets", True, False),  # keypairs live apart; runner tokens are derived
    (API_SA, "get", "secrets", True, False),
    (API_SA, "get", "pods/log", True, True),
    (API_SA, "create", "pods", True, False),
    (API_SA, "create", "pods/exec", True, False),
    (API_SA, "delete", "pods", True, False),
    (API_SA, "create", "secrets", True, False),
    (API_SA, "update", "secrets", True, False),
    (API_SA, "create", "events", True, False),
    (API_SA, "list", "kernelsessions.kubernel.io", False, False),
    (API_SA, "list", "secrets", False, False),
    (OPERATOR_SA, "create", "pods", True, True),
    (OPERATOR_SA, "deletecollection", "pods", True, True),
    (OPERATOR_SA, "create", "services", True, True),
    (OPERATOR_SA, "create", "events", True, True),
    (OPERATOR_SA, "patch", "kernelsessions.kubernel.io/status", True, True),
    (OPERATOR_SA, "patch", "kopfpeerings.kopf.dev", True, True),
    (OPERATOR_SA, "create", "secrets", True, True),
    (OPERATOR_SA, "get", "secrets", True, False),
    (OPERATOR_SA, "create", "kernelsessions.kubernel.io", True, False),
    (OPERATOR_SA, "create", "pods", False, False),
    (OPERATOR_SA, "list", "kernelsessions.kubernel.io", False, False),
    (OPERATOR_SA, "delete", "nodes", True, False),
    (OPERATOR_SA, "patch", "clusterkopfpeerings.kopf.dev", True, False),
]


@pytest.mark.parametrize(
    ("account", "verb", "resource", "here", "allowed"),
    RBAC,
    ids=[
        f"{a.rsplit('-', 1)[1]}-{'can' if ok else 'cannot'}-{v}-{r.split('.')[0]}"
        f"{'' if here else '-elsewhere'}"
        for a, v, r, here, ok in RBAC
    ],
)
def test_rbac(install: Install, account: str, verb: str, resource: str, here: bool, allowed: bool) -> None:
    assert install.can_i(account, verb, resource, None if here else "default") is allowed


def test_the_api_reads_secrets_only_where_keypairs_live(install: Install, tmp_path: Path) -> None:
    keypairs = install.keypair_namespace
    for verb in ("get", "list", "watch"):
        assert install.can_i(API_SA, verb, "secrets", keypairs)
    for verb in ("create", "update", "delete"):
        assert not install.can_i(API_SA, verb, "secrets", keypairs)
    assert not install.can_i(OPERATOR_SA, "get", "secrets", keypairs)
    # What the Secret rights give, really: the bootstrap keypair is there, and it is all there is.
    names = [s["metadata"]["name"] for s in install.get("secrets", namespace=keypairs)["items"]]
    assert names == [f"{FULLNAME}-bootstrap-keypair"]
    # A real request with the API's own token: the Secrets beside it (the runner key) are refused.
    as_api = service_account_kubeconfig(install, API_SA, tmp_path / "api.kubeconfig")
    refused = subprocess.run(
        [
            install.kubectl[0],
            f"--kubeconfig={as_api}",
            "get",
            "secret",
            f"{FULLNAME}-runner-key",
            "-n",
            install.namespace,
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr


def test_an_upgrade_keeps_the_bootstrap_keypair(install: Install) -> None:
    before = install.bootstrap_secret()["data"]
    result = subprocess.run(
        [
            *install.helm,
            "upgrade",
            RELEASE,
            str(REPO / "helm" / "kubernel"),
            "--reuse-values",
            "--set",
            "sessions.idleTimeoutSeconds=600",
            "--wait",
            "--timeout=120s",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert install.bootstrap_secret()["data"] == before
    operator = install.get("deployment", OPERATOR_SA)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KUBERNEL_IDLE_TIMEOUT", "value": "600"} in operator["env"]


def service_account_kubeconfig(install: Install, account: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (a short-lived token)."""
    token = subprocess.run(
        [*install.kubectl, "create", "token", account, "-n", install.namespace, "--duration=20m"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    admin = yaml.safe_load(Path(install.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:
        path_ = Path(cluster.pop("certificate-authority"))
        cluster["certificate-authority-data"] = base64.b64encode(path_.read_bytes()).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": account,
                "clusters": [{"name": "cluster", "cluster": cluster}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": account,
                        "context": {"cluster": "cluster", "user": account, "namespace": install.namespace},
                    }
                ],
            }
        )
    )
    return str(path)


def chart_env(install: Install, deployment: str, images: Path) -> dict[str, str]:
    """The environment the chart gives a container, with the image table and the chart's
    runner key (its Secret, which the Pods mount) as local files."""
    container = install.get("deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container["env"]}  # an empty value is left out
    key = images.parent / "runner.key"
    key.write_bytes(base64.b64decode(install.get("secret", f"{FULLNAME}-runner-key")["data"]["key"]))
    assert env["KUBERNEL_RUNNER_KEY_FILE"].startswith("/var/run/kubernel/runner-key/")
    return env | {"KUBERNEL_IMAGES": str(images), "KUBERNEL_RUNNER_KEY_FILE": str(key)}


@pytest.fixture(scope="module")
def services(
    install: Install, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, ApiProcess]]:
    work = tmp_path_factory.mktemp("helm-services")
    images = work / "images.yaml"
    images.write_text(install.get("configmap", FULLNAME)["data"]["images.yaml"])
    operator_env = chart_env(install, OPERATOR_SA, images)
    for name in ("KUBERNEL_OPERATOR_HEALTH_PORT", "KUBERNEL_OPERATOR_METRICS_PORT"):
        operator_env.pop(name)  # a free port of the test's
    operator = OperatorProcess(
        service_account_kubeconfig(install, OPERATOR_SA, work / "operator.kubeconfig"), work, operator_env
    )
    api_env = chart_env(install, API_SA, images)
    for name in ("KUBERNEL_API_PORT", "KUBERNEL_API_METRICS_PORT"):
        api_env.pop(name)
    api = ApiProcess(
        service_account_kubeconfig(install, API_SA, work / "api.kubeconfig"),
        install.sessions_namespace,
        work,
        api_env,
    )
    operator.start()
    api.start()
    yield operator, api
    api.stop()
    operator.stop()


async def test_the_chart_accounts_are_enough_to_serve_a_session(
    install: Install, kube: client.ApiClient, services: tuple[OperatorProcess, ApiProcess]
) -> None:
    operator, api = services
    keypair = kp.from_secret(install.bootstrap_secret())
    async with aiohttp.ClientSession() as http:
        bai = ApiClient(api.base_url, keypair, http)
        created = await bai.create("helm-1", maxWaitSeconds=60)
        assert created.status == 201 and created.body["status"] == "RUNNING", created.body
        info = await bai.call("GET", f"/kernel/{created.body['kernelId']}")
        assert info.status == 200 and info.body["status"] == "RUNNING"
        destroyed = await bai.call("DELETE", f"/kernel/{created.body['kernelId']}")
        assert destroyed.status == 200, destroyed.body

    async def pods_gone() -> bool:
        pods = await client.CoreV1Api(kube).list_namespaced_pod(
            install.sessions_namespace, label_selector="app.kubernetes.io/managed-by=kubernel"
        )
        return not pods.items

    await wait_until(pods_gone, timeout=30, what="the session's Pods deleted by the operator")
    peers = install.get("kopfpeering", FULLNAME, namespace=install.sessions_namespace).get("status") or {}
    assert len(peers) == 1, f"the operator records itself in the peering object: {peers}"
    for proc in (operator, api):
        log = proc.log.read_text()
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]


# -- cluster-wide scope: Pod writes only where sessions may run, kernel-shaped only ------
CW_RELEASE = "kw"
CW_OPERATOR_SA = f"{CW_RELEASE}-kubernel-operator"


@pytest.fixture(scope="module")
def cluster_wide(
    kubeconfig: str, kubectl_bin: str, helm_bin: str, crds: None
) -> Iterator[tuple[Install, str]]:
    """A cluster-wide release whose sessions run in one namespace of their own."""
    namespace = f"h-{uuid.uuid4().hex[:10]}"
    sessions = f"{namespace}-s"
    kubectl = [kubectl_bin, f"--kubeconfig={kubeconfig}"]
    helm = [helm_bin, f"--kubeconfig={kubeconfig}", "-n", namespace]
    # The chart creates the sessions namespace (restricted); the release's must exist.
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    placement = [
        f"--set-json={part}.{key}={json.dumps(SIMULATED_SCHEDULING[key])}"
        for part in ("api", "operator")
        for key in ("nodeSelector", "tolerations")
    ]
    result = subprocess.run(
        [
            *helm,
            "install",
            CW_RELEASE,
            str(REPO / "helm" / "kubernel"),
            "--wait",
            "--timeout=120s",
            "--set",
            "scope.clusterWide=true",
            "--set",
            f"sessions.namespace={sessions}",
            # The admission policy alone, as in an opted-in namespace the chart did not
            # create: Pod Security admission would refuse these Pods before it.
            "--set",
            "sessions.podSecurity=privileged",
            "--set",
            "operator.peering.enabled=false",
            *placement,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield Install(namespace, kubeconfig, kubectl, helm), sessions
    subprocess.run([*helm, "uninstall", CW_RELEASE, "--wait", "--timeout=60s"], capture_output=True)
    subprocess.run(
        [*kubectl, "delete", "namespace", namespace, sessions, f"{namespace}-keypairs", "--wait=false"],
        capture_output=True,
    )


KERNEL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "generateName": "probe-",
        "labels": {"app.kubernetes.io/managed-by": "kubernel", "app.kubernetes.io/component": "kernel"},
    },
    "spec": {
        "automountServiceAccountToken": False,
        "nodeSelector": {"kubernel.io/nowhere": "true"},
        "containers": [{"name": "kernel", "image": "registry.example/kernels/python:probe"}],
    },
}


def create_as(install: Install, account: str, namespace: str, pod: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *install.kubectl,
            "create",
            "-f",
            "-",
            "-n",
            namespace,
            f"--as=system:serviceaccount:{install.namespace}:{account}",
        ],
        input=json.dumps(pod),
        capture_output=True,
        text=True,
    )


def test_a_cluster_wide_operator_writes_pods_only_where_sessions_may_run(
    cluster_wide: tuple[Install, str],
) -> None:
    install, sessions = cluster_wide
    assert install.can_i(CW_OPERATOR_SA, "create", "pods", sessions)
    for elsewhere in ("kube-system", "default", install.namespace):
        assert not install.can_i(CW_OPERATOR_SA, "create", "pods", elsewhere), elsewhere
    assert install.can_i(CW_OPERATOR_SA, "watch", "pods", "kube-system")  # it follows Pods everywhere
    refused = create_as(install, CW_OPERATOR_SA, "kube-system", KERNEL_POD)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    made = create_as(install, CW_OPERATOR_SA, sessions, KERNEL_POD)
    assert made.returncode == 0, made.stderr


@pytest.mark.parametrize(
    "breakage",
    ["privileged", "capability", "host network", "host path", "token", "unlabelled", "init container"],
)
def test_the_admission_policy_refuses_pods_that_are_not_kernels(
    cluster_wide: tuple[Install, str], breakage: str
) -> None:
    install, sessions = cluster_wide
    pod = json.loads(json.dumps(KERNEL_POD))
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    if breakage == "privileged":
        container["securityContext"] = {"privileged": True}
    elif breakage == "capability":
        container["securityContext"] = {"capabilities": {"add": ["NET_ADMIN"]}}
    elif breakage == "host network":
        spec["hostNetwork"] = True
    elif breakage == "host path":
        spec["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    elif breakage == "token":
        spec["automountServiceAccountToken"] = True
    elif breakage == "unlabelled":
        pod["metadata"]["labels"] = {}
    elif breakage == "init container":
        spec["initContainers"] = [{"name": "init", "image": "registry.example/x:1"}]
    refused = create_as(install, CW_OPERATOR_SA, sessions, pod)
    assert refused.returncode != 0 and "ValidatingAdmissionPolicy" in refused.stderr, refused.stderr
