"""The Helm chart, rendered offline: lint, schema, and what each object says.

No cluster here; tests/integration/test_helm.py installs the chart and proves its
RBAC against a real kube-apiserver.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from kubernel import resource as r
from kubernel import runner as rn
from kubernel.images import ImageTable
from kubernel.pool import KernelPoolSpec
from kubernel_api import keypairs as kp
from kubernel_api.limits import Limits

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kubernel"
EXAMPLES = sorted((REPO / "helm" / "examples").glob("*.yaml"))
RELEASE, NAMESPACE = "kn", "kubernel"
KEYPAIR_NAMESPACE = "kubernel-keypairs"  # keypairs live apart by default
SESSION_NAMESPACE = "kubernel-sessions"  # and so do the sessions, restricted
SESSION_SCOPED = {("Role", "kn-kubernel-api"), ("RoleBinding", "kn-kubernel-api")}


def render(helm_bin: str, *args: str) -> list[dict]:
    out = subprocess.run(
        [helm_bin, "template", RELEASE, str(CHART), "-n", NAMESPACE, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[(o['kind'], o['metadata']['name']) for o in objects]}"
    return found[0]


def env_of(deployment: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def rules_of(role: dict) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


@pytest.fixture(scope="module")
def default(helm_bin: str) -> list[dict]:
    return render(helm_bin)


def test_the_chart_crds_are_the_repository_crds() -> None:
    ours = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert chart == ours, "run: make crds"


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=lambda v: v.name if v else "defaults")
def test_lint_is_clean(helm_bin: str, values: Path | None) -> None:
    args = ["-f", str(values)] if values else []
    result = subprocess.run([helm_bin, "lint", "--strict", str(CHART), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("operator.replicas=2", "operator.replicas"),
        ("api.replicsa=2", "replicsa"),
        ("sessions.limits.memory=lots", "memory"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("keypairs.bootstrap.secretKey=short", "secretKey"),
        ("sessions.namespace=Not_A_Namespace", "namespace"),
        ("ingress.hosts[0].paths[0].pathType=Anything", "pathType"),
    ],
)
def test_the_schema_refuses_bad_values(helm_bin: str, setting: str, complaint: str) -> None:
    result = subprocess.run(
        [helm_bin, "template", RELEASE, str(CHART), "--set", setting], capture_output=True, text=True
    )
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_every_object_is_labelled_and_namespaced(default: list[dict]) -> None:
    for obj in default:
        labels = obj["metadata"]["labels"]
        assert (
            labels["app.kubernetes.io/instance"] == RELEASE
            and labels["app.kubernetes.io/part-of"] == "kubernel"
        )
        assert "app.kubernetes.io/component" in labels, obj["metadata"]["name"]
        if obj["kind"] == "Namespace":  # the keypairs' and the sessions' own
            assert obj["metadata"]["name"] in (KEYPAIR_NAMESPACE, SESSION_NAMESPACE)
        elif (
            (labels["app.kubernetes.io/component"] == "operator" and obj["kind"] in ("Role", "RoleBinding"))
            or obj["kind"] in ("KopfPeering", "NetworkPolicy", "ResourceQuota")
            or (obj["kind"], obj["metadata"]["name"]) in SESSION_SCOPED
        ):
            assert obj["metadata"]["namespace"] == SESSION_NAMESPACE, obj["metadata"]["name"]
        elif (obj["kind"] == "Secret" and labels["app.kubernetes.io/component"] == "keypair") or obj[
            "metadata"
        ]["name"] == "kn-kubernel-api-keypairs":
            assert obj["metadata"]["namespace"] == KEYPAIR_NAMESPACE, obj["metadata"]["name"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_both_deployments_run_locked_down(default: list[dict]) -> None:
    for name, command in (("kn-kubernel-api", "kubernel_api"), ("kn-kubernel-operator", "kubernel_operator")):
        pod = one(default, "Deployment", name)["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["command"][:3] == ["python", "-m", command]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {m["mountPath"] for m in container["volumeMounts"]} == {
            "/etc/kubernel",
            "/tmp",
            "/var/run/kubernel/runner-key",
        }
        assert container["image"] == "ghcr.io/kubernel/kubernel:0.1.0"


def test_the_api_deployment(default: list[dict]) -> None:
    deployment = one(default, "Deployment", "kn-kubernel-api")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = env_of(deployment)
    assert (
        env["KUBERNEL_API_NAMESPACE"] == SESSION_NAMESPACE
        and env["KUBERNEL_KEYPAIR_NAMESPACE"] == KEYPAIR_NAMESPACE
    )
    assert Limits.model_validate_json(env["KUBERNEL_API_LIMITS"]) == Limits(
        cpu="64", memory="256Gi", gpu=8, cluster_size=16
    )
    assert env["KUBERNEL_API_MAX_BODY"] == "1048576"
    pdb = one(default, "PodDisruptionBudget", "kn-kubernel-api")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    service = one(default, "Service", "kn-kubernel-api")
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize(
    ("drain", "pre_stop", "grace"),
    [
        (None, {"exec": {"command": ["sleep", "5"]}}, 35),
        (12, {"exec": {"command": ["sleep", "12"]}}, 42),
        (0, None, 30),
    ],
)
def test_a_leaving_api_pod_keeps_serving_while_proxies_catch_up(
    helm_bin: str, drain: int | None, pre_stop: dict | None, grace: int
) -> None:
    objects = render(helm_bin, *([] if drain is None else ["--set", f"api.drainSeconds={drain}"]))
    pod = one(objects, "Deployment", "kn-kubernel-api")["spec"]["template"]["spec"]
    assert pod["containers"][0].get("lifecycle", {}).get("preStop") == pre_stop
    assert pod["terminationGracePeriodSeconds"] == grace


def test_the_operator_deployment(default: list[dict]) -> None:
    deployment = one(default, "Deployment", "kn-kubernel-operator")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(deployment)
    assert env["KUBERNEL_NAMESPACES"] == SESSION_NAMESPACE and env["KUBERNEL_PEERING"] == "kn-kubernel"
    peering = one(default, "KopfPeering", "kn-kubernel")
    assert peering["apiVersion"] == "kopf.dev/v1"


def test_the_image_table_is_what_the_services_load(helm_bin: str) -> None:
    example = REPO / "helm" / "examples" / "cluster-wide.yaml"
    config = one(render(helm_bin, "-f", str(example)), "ConfigMap", "kn-kubernel")
    table = ImageTable.model_validate(yaml.safe_load(config["data"]["images.yaml"]))
    values = yaml.safe_load(example.read_text())["images"]
    assert table.allowed_registries == values["allowedRegistries"]
    assert table.resolve("python-tensorflow:1.12").image == "docker.io/lablup/python-tensorflow:1.12-py36"


def test_the_image_tables_scheduling_reaches_the_services(helm_bin: str) -> None:
    """Every field of the values' `images` is in the file (`scheduling` was once left out)."""
    config = one(
        render(helm_bin, "--set-json", 'images.scheduling={"nodeSelector":{"pool":"sessions"}}'),
        "ConfigMap",
        "kn-kubernel",
    )
    table = ImageTable.model_validate(yaml.safe_load(config["data"]["images.yaml"]))
    assert table.scheduling.node_selector == {"pool": "sessions"}
    assert table.resolve("docker.io/any:1").scheduling.node_selector == {"pool": "sessions"}


def test_rbac_is_least_privilege(default: list[dict]) -> None:
    api = rules_of(one(default, "Role", "kn-kubernel-api"))
    assert api == {
        ("kubernel.io", "kernelsessions", v) for v in ("get", "list", "watch", "create", "patch", "delete")
    } | {("kubernel.io", "kernelsessions/status", v) for v in ("get", "patch")} | {
        ("", "pods/log", "get"),  # kernel logs
        ("", "persistentvolumeclaims", "get"),  # whose folder a claim is
    } | {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "delete")}  # no Secret
    assert rules_of(one(default, "Role", "kn-kubernel-api-keypairs")) == {
        ("", "secrets", v) for v in ("get", "list", "watch")
    }
    operator = rules_of(one(default, "Role", "kn-kubernel-operator"))
    assert ("", "pods", "create") in operator
    # Runner Secrets are created, never read back: the operator cannot read keypairs.
    assert {(g, r, v) for g, r, v in operator if r == "secrets"} == {("", "secrets", "create")}
    assert ("kopf.dev", "kopfpeerings", "patch") in operator
    assert not [o for o in default if o["kind"].startswith("Cluster")], (
        "namespace scope needs no cluster roles"
    )


def test_cluster_wide_scope(helm_bin: str) -> None:
    objects = render(helm_bin, "-f", str(REPO / "helm" / "examples" / "cluster-wide.yaml"))
    role = one(objects, "ClusterRole", "kubernel-kn-kubernel-operator")
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in rules_of(role)
    binding = one(objects, "ClusterRoleBinding", "kubernel-kn-kubernel-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kn-kubernel-operator", "namespace": NAMESPACE}
    ]
    assert env_of(one(objects, "Deployment", "kn-kubernel-operator"))["KUBERNEL_NAMESPACES"] == ""
    assert one(objects, "ClusterKopfPeering", "kn-kubernel")
    assert one(objects, "Role", "kn-kubernel-api")["metadata"]["namespace"] == "kernels"
    assert one(objects, "Role", "kn-kubernel-api-keypairs")["metadata"]["namespace"] == "kubernel-keys"
    assert one(objects, "Secret", "kn-kubernel-bootstrap-keypair")["metadata"]["namespace"] == "kubernel-keys"


def test_a_cluster_wide_operator_writes_pods_only_where_sessions_may_run(helm_bin: str) -> None:
    objects = render(
        helm_bin,
        "-f",
        str(REPO / "helm" / "examples" / "cluster-wide.yaml"),
        "--set-json",
        'scope.sessionNamespaces=["kernels","team-a"]',
    )
    reads = rules_of(one(objects, "ClusterRole", "kubernel-kn-kubernel-operator"))
    assert ("", "pods", "watch") in reads and not {v for g, r_, v in reads if r_ == "pods"} - {
        "get",
        "list",
        "watch",
    }
    writes = one(objects, "ClusterRole", "kubernel-kn-kubernel-operator-sessions")
    assert ("", "pods", "create") in rules_of(writes)
    bindings = [
        o
        for o in objects
        if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == writes["metadata"]["name"]
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["kernels", "team-a"]
    assert not [
        o
        for o in objects
        if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == writes["metadata"]["name"]
    ], "no cluster-wide Pod writes"
    policy = one(objects, "ValidatingAdmissionPolicy", "kubernel-kn-kubernel-kernel-pods")
    assert policy["spec"]["matchConditions"][0]["expression"] == (
        'request.userInfo.username == "system:serviceaccount:kubernel:kn-kubernel-operator"'
    )
    assert one(objects, "ValidatingAdmissionPolicyBinding", "kubernel-kn-kubernel-kernel-pods")["spec"][
        "validationActions"
    ] == ["Deny"]
    namespaced = render(helm_bin)
    assert not [o for o in namespaced if o["kind"].startswith("ValidatingAdmission")]


def test_the_ingress_suits_event_streams(helm_bin: str) -> None:
    objects = render(helm_bin, "-f", str(REPO / "helm" / "examples" / "ingress-nginx.yaml"))
    ingress = one(objects, "Ingress", "kn-kubernel-api")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "kn-kubernel-api", "port": {"name": "http"}}
    assert one(objects, "Service", "kn-kubernel-api")["spec"]["ports"][0]["name"] == "http"
    assert not [o for o in render(helm_bin) if o["kind"] == "Ingress"], "the Ingress is optional"


def _container_ports(deployment: dict) -> dict[str, int]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_metrics_have_ports_of_their_own_the_ingress_does_not_route(helm_bin: str) -> None:
    objects = render(helm_bin, "-f", str(REPO / "helm" / "examples" / "ingress-nginx.yaml"))
    api, operator = (
        one(objects, "Deployment", "kn-kubernel-api"),
        one(objects, "Deployment", "kn-kubernel-operator"),
    )
    assert _container_ports(api)["metrics"] == int(env_of(api)["KUBERNEL_API_METRICS_PORT"]) == 9090
    assert (
        _container_ports(operator)["metrics"]
        == int(env_of(operator)["KUBERNEL_OPERATOR_METRICS_PORT"])
        == 8082
    )
    api_ports = {p["name"]: p for p in one(objects, "Service", "kn-kubernel-api")["spec"]["ports"]}
    assert api_ports["metrics"]["targetPort"] == "metrics" and api_ports["http"]["targetPort"] == "http"
    operator_service = one(objects, "Service", "kn-kubernel-operator-metrics")
    assert operator_service["spec"]["selector"]["app.kubernetes.io/component"] == "operator"
    assert [p["targetPort"] for p in operator_service["spec"]["ports"]] == ["metrics"]
    backends = [
        path["backend"]["service"]["port"]
        for rule in one(objects, "Ingress", "kn-kubernel-api")["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends and all(port == {"name": "http"} for port in backends)


def test_a_service_monitor_scrapes_both_services_when_asked(helm_bin: str) -> None:
    assert not [o for o in render(helm_bin) if o["kind"] == "ServiceMonitor"], "off by default"
    objects = render(
        helm_bin,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
    )
    monitor = one(objects, "ServiceMonitor", "kn-kubernel")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    selected = [
        o
        for o in objects
        if o["kind"] == "Service"
        and all(
            o["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items()
        )
        and any(p["name"] == "metrics" for p in o["spec"]["ports"])
    ]
    assert sorted(o["metadata"]["name"] for o in selected) == [
        "kn-kubernel-api",
        "kn-kubernel-operator-metrics",
    ]


def test_an_ingress_host_left_empty_matches_every_host(helm_bin: str, tmp_path: Path) -> None:
    """What `make deploy` installs (no DNS on the test bed): the rule has no host at all,
    which Kubernetes reads as every host; the image is pinned by digest."""
    from kubernel_testbed import deploy

    digest = "sha256:" + "ab" * 32
    values = deploy.chart_values(
        f"registry.kubernel.test/kubernel/kubernel@{digest}",
        yaml.safe_load(deploy.DEV_IMAGE_TABLE.read_text()),
        yaml.safe_load(deploy.TRAEFIK_VALUES.read_text())["ingress"],
    )
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    objects = render(helm_bin, "-f", str(tmp_path / "values.yaml"))
    ingress = one(objects, "Ingress", "kn-kubernel-api")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert [set(rule) for rule in ingress["spec"]["rules"]] == [{"http"}]
    api = one(objects, "Deployment", "kn-kubernel-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == f"registry.kubernel.test/kubernel/kubernel@{digest}"


def test_the_bootstrap_keypair_is_one_the_api_accepts(default: list[dict], helm_bin: str) -> None:
    secret = one(default, "Secret", "kn-kubernel-bootstrap-keypair")
    keypair = kp.from_secret(secret)
    assert keypair.role is kp.Role.SUPERADMIN and keypair.active and keypair.access_key.startswith("AKIA")
    assert len(keypair.access_key) == 20 and len(keypair.secret_key) == 40
    labels = secret["metadata"]["labels"]
    assert "managed-by" not in kp.SELECTOR, "Helm labels what it installs managed-by=Helm"
    assert all(labels[k] == v for k, v in (kv.split("=") for kv in kp.SELECTOR.split(",")))
    given = one(
        render(
            helm_bin,
            "--set",
            "keypairs.bootstrap.accessKey=AKIAGIVEN",
            "--set",
            "keypairs.bootstrap.secretKey=a-secret-of-my-choosing",
        ),
        "Secret",
        "kn-kubernel-bootstrap-keypair",
    )
    assert (
        kp.from_secret(given).access_key == "AKIAGIVEN"
        and given["metadata"]["labels"]["kubernel.io/access-key"] == "AKIAGIVEN"
    )
    assert [
        o["metadata"]["name"]
        for o in render(helm_bin, "--set", "keypairs.bootstrap.enabled=false")
        if o["kind"] == "Secret"
    ] == ["kn-kubernel-runner-key"]


def test_keypairs_live_apart_by_default(default: list[dict], helm_bin: str) -> None:
    """The API's only right to Secrets is in a namespace holding keypairs alone (kept on
    uninstall); a namespace given, or the release's own, is not created."""
    namespace = one(default, "Namespace", KEYPAIR_NAMESPACE)
    assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert {
        (o["kind"], o["metadata"]["name"])
        for o in default
        if o["metadata"].get("namespace") == KEYPAIR_NAMESPACE
    } == {
        ("Secret", "kn-kubernel-bootstrap-keypair"),
        ("Role", "kn-kubernel-api-keypairs"),
        ("RoleBinding", "kn-kubernel-api-keypairs"),
    }
    for given in (("--set", "keypairs.namespace=kubernel"), ("--set", "keypairs.createNamespace=false")):
        created = [o["metadata"]["name"] for o in render(helm_bin, *given) if o["kind"] == "Namespace"]
        assert created == [SESSION_NAMESPACE]


def test_sessions_live_apart_in_a_namespace_that_enforces_restricted(
    default: list[dict], helm_bin: str
) -> None:
    """The API server itself refuses a kernel Pod looser than ``sessions.podSecurity``; a
    namespace the chart does not create is left alone (NOTES.txt says to label it)."""
    labels = one(default, "Namespace", SESSION_NAMESPACE)["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith("pod-security")} == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    baseline = one(render(helm_bin, "--set", "sessions.podSecurity=baseline"), "Namespace", SESSION_NAMESPACE)
    assert baseline["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    for given in (("--set", f"sessions.namespace={NAMESPACE}"), ("--set", "sessions.createNamespace=false")):
        created = [o["metadata"]["name"] for o in render(helm_bin, *given) if o["kind"] == "Namespace"]
        assert created == [KEYPAIR_NAMESPACE]


def test_both_services_share_the_mounted_runner_key(default: list[dict]) -> None:
    """Runner tokens are derived from one key mounted into both: the API reads no Secret for them."""
    key = one(default, "Secret", "kn-kubernel-runner-key")
    assert len(base64.b64decode(key["data"]["key"])) >= 32
    for name in ("kn-kubernel-api", "kn-kubernel-operator"):
        pod = one(default, "Deployment", name)["spec"]["template"]["spec"]
        assert {
            "name": "runner-key",
            "secret": {"secretName": "kn-kubernel-runner-key", "defaultMode": 0o400},
        } in (pod["volumes"])
        assert (
            env_of(one(default, "Deployment", name))["KUBERNEL_RUNNER_KEY_FILE"]
            == "/var/run/kubernel/runner-key/key"
        )


def test_optional_parts_follow_their_values(helm_bin: str) -> None:
    single = render(
        helm_bin,
        "--set",
        "api.replicas=1",
        "--set",
        "operator.peering.enabled=false",
        "--set",
        "tests.enabled=false",
        "--set",
        "image.digest=sha256:" + "a" * 64,
    )
    kinds = {o["kind"] for o in single}
    assert "PodDisruptionBudget" not in kinds and "KopfPeering" not in kinds and "Pod" not in kinds
    operator = one(single, "Deployment", "kn-kubernel-operator")
    assert env_of(operator)["KUBERNEL_PEERING"] == ""
    assert (
        operator["spec"]["template"]["spec"]["containers"][0]["image"]
        == "ghcr.io/kubernel/kubernel@sha256:" + "a" * 64
    )


def test_helm_test_calls_the_api_readiness_through_the_service(default: list[dict]) -> None:
    pod = one(default, "Pod", "kn-kubernel-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "http://kn-kubernel-api.kubernel.svc:80/readyz" in script
    compile(script, "helm-test", "exec")  # the probe is valid Python


def test_the_values_schema_is_valid_json() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False and "operator" in schema["properties"]


def test_the_images_schema_is_the_image_tables_model() -> None:
    """`make crds` writes it (kubernel.chartschema): the chart accepts what the services load."""
    from kubernel.chartschema import with_images

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema == with_images(schema)


def test_the_api_limits_are_values(default: list[dict], helm_bin: str) -> None:
    env = env_of(one(default, "Deployment", "kn-kubernel-api"))
    assert (env["KUBERNEL_API_RATE_LIMIT"], env["KUBERNEL_API_STREAMS_PER_KEYPAIR"]) == ("5000", "32")
    assert "KUBERNEL_API_ALLOWED_HOSTS" not in env  # any host, until the platform team names its own
    given = render(
        helm_bin,
        "--set",
        "api.config.rateLimit=100000",
        "--set-json",
        'api.config.allowedHosts=["api.example.com","kn-kubernel-api.kubernel.svc"]',
    )
    env = env_of(one(given, "Deployment", "kn-kubernel-api"))
    assert env["KUBERNEL_API_RATE_LIMIT"] == "100000"
    assert env["KUBERNEL_API_ALLOWED_HOSTS"] == "api.example.com,kn-kubernel-api.kubernel.svc"


def test_kernels_reach_nothing_but_dns_and_only_the_api_and_operator_reach_them(
    default: list[dict], helm_bin: str
) -> None:
    policy = one(default, "NetworkPolicy", "kn-kubernel-kernels")
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "kubernel", "app.kubernetes.io/component": "kernel"}
    }
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # It says it isolates the kernels: the operator then lets a session's own kernels meet.
    assert policy["metadata"]["labels"][r.LABEL_KERNELS_ISOLATED] == "true"
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": rn.PORT}]
    # The API's Pods (code calls) and the operator's (a warm kernel's bind), nothing else.
    assert ingress["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "kubernel",
                    "app.kubernetes.io/instance": RELEASE,
                    "app.kubernetes.io/component": component,
                }
            },
        }
        for component in ("api", "operator")
    ]
    # The API's and the operator's Pods carry those labels.
    for peer, deployment in zip(ingress["from"], ("kn-kubernel-api", "kn-kubernel-operator"), strict=True):
        labels = one(default, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
        assert peer["podSelector"]["matchLabels"].items() <= labels.items()
    [dns] = spec["egress"]  # no internet by default
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    internet = one(
        render(helm_bin, "--set", "networkPolicy.internetEgress=true"), "NetworkPolicy", "kn-kubernel-kernels"
    )
    block = internet["spec"]["egress"][1]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0" and {"169.254.0.0/16", "10.0.0.0/8"} <= set(block["except"])
    off = render(helm_bin, "--set", "networkPolicy.enabled=false")
    assert not [o for o in off if o["kind"] == "NetworkPolicy"]


def test_a_resource_quota_caps_all_sessions_together(default: list[dict], helm_bin: str) -> None:
    assert not [o for o in default if o["kind"] == "ResourceQuota"]  # off by default
    given = render(
        helm_bin, "--set-json", 'sessions.resourceQuota={"count/kernelsessions.kubernel.io": "5000"}'
    )
    quota = one(given, "ResourceQuota", "kn-kubernel-sessions")
    assert quota["metadata"]["namespace"] == SESSION_NAMESPACE
    assert quota["spec"]["hard"] == {"count/kernelsessions.kubernel.io": "5000"}


def test_the_batch_run_time_limit_reaches_the_operator(default: list[dict]) -> None:
    assert env_of(one(default, "Deployment", "kn-kubernel-operator"))["KUBERNEL_BATCH_TIMEOUT"] == "86400"


def test_pools_in_the_values_are_kernel_pools_the_operator_may_keep(
    default: list[dict], helm_bin: str
) -> None:
    assert not [o for o in default if o["kind"] == "KernelPool"]  # none by default
    given = render(
        helm_bin,
        "--set-json",
        'pools={"python": {"image": "python:3.6", "replicas": 3, "resources": {"cpu": "1"}}}',
    )
    pool = one(given, "KernelPool", "python")
    assert pool["metadata"]["namespace"] == SESSION_NAMESPACE
    assert pool["spec"] == {"image": "python:3.6", "replicas": 3, "resources": {"cpu": "1"}}
    KernelPoolSpec.model_validate(pool["spec"])  # what the operator reads
    rules = one(default, "Role", "kn-kubernel-operator")["rules"]
    granted = {(res, verb) for rule in rules for res in rule["resources"] for verb in rule["verbs"]}
    assert {("kernelpools", "watch"), ("kernelpools/status", "patch"), ("pods/resize", "patch")} <= granted
    with pytest.raises(subprocess.CalledProcessError):  # the schema refuses what the model would
        render(helm_bin, "--set-json", 'pools={"python": {"image": "python:3.6", "replicas": -1}}')
