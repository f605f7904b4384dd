"""Traefik on the test bed (kubernel_testbed.ingress), its pure part: the image it
builds and the objects it applies, against literal expectations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubernel_testbed import imagebuild, ingress
from kubernel_testbed.imagebuild import PAUSE, PYTHON, TRAEFIK

TRAEFIK_ARGS = [
    "--entrypoints.web.address=:8000/tcp",
    "--entrypoints.web.asdefault=true",
    "--entrypoints.web.transport.respondingtimeouts.readtimeout=60s",
    "--entrypoints.web.transport.respondingtimeouts.writetimeout=0s",
    "--entrypoints.web.transport.respondingtimeouts.idletimeout=180s",
    "--entrypoints.traefik.address=:8082/tcp",
    "--ping=true",
    "--ping.entrypoint=traefik",
    "--serverstransport.forwardingtimeouts.dialtimeout=30s",
    "--serverstransport.forwardingtimeouts.responseheadertimeout=0s",
    "--serverstransport.forwardingtimeouts.idleconntimeout=90s",
    "--providers.kubernetesingress=true",
    "--providers.kubernetesingress.ingressclass=traefik",
    "--providers.kubernetesingress.ingressendpoint.ip=10.246.0.1",
    "--global.checknewversion=false",
    "--global.sendanonymoususage=false",
    "--log.level=INFO",
    "--log.nocolor=true",
    "--accesslog=true",
]
LABELS = {
    "app.kubernetes.io/name": "traefik",
    "app.kubernetes.io/component": "ingress-controller",
    "app.kubernetes.io/managed-by": "kubernel-testbed",
}
PROBE = {"httpGet": {"path": "/ping", "port": "ping"}, "timeoutSeconds": 2}


# -- the image ---------------------------------------------------------------------------
def test_traefik_is_built_on_demand_only() -> None:
    assert imagebuild.IMAGES == (PAUSE, PYTHON)  # what `make cluster` builds and pushes
    assert imagebuild.ON_DEMAND == (TRAEFIK,)
    assert TRAEFIK.reference == "kubernel/traefik:3.6.12"
    assert ingress.IMAGE == "registry.kubernel.test/kubernel/traefik:3.6.12"


def test_go_build_of_a_required_module_s_package_with_version_flags() -> None:
    assert imagebuild.go_build_argv(TRAEFIK, Path("/r/traefik")) == [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-buildvcs=false",
        "-ldflags=-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=3.6.12"
        " -X github.com/traefik/traefik/v3/pkg/version.BuildDate=2026-03-26T09:54:04Z",
        "-o",
        "/r/traefik",
        "github.com/traefik/traefik/v3/cmd/traefik",
    ]
    assert imagebuild.go_build_argv(PAUSE, Path("/r/pause"), "/usr/local/go/bin/go") == [
        "/usr/local/go/bin/go",
        "build",
        "-v",
        "-trimpath",
        "-buildvcs=false",
        "-ldflags=-s -w",
        "-o",
        "/r/pause",
        ".",
    ]


def test_the_module_requires_the_version_the_image_is_tagged_with() -> None:
    go_mod = (imagebuild.source_dir(TRAEFIK) / "go.mod").read_text()
    assert re.search(r"^\s*github\.com/traefik/traefik/v3 v(\S+)", go_mod, re.M).group(1) == TRAEFIK.tag
    assert "tool github.com/traefik/traefik/v3/cmd/traefik" in go_mod
    # upstream's replace lines: without them the build takes the wrong gorilla/mux
    for fork in (
        "github.com/gorilla/mux => github.com/containous/mux",
        "github.com/abbot/go-http-auth => github.com/containous/go-http-auth",
    ):
        assert fork in go_mod


def test_the_image_configuration() -> None:
    assert imagebuild.oci_config(TRAEFIK) == {
        "User": "65532:65532",
        "Entrypoint": ["/traefik"],
        "Labels": {
            "org.opencontainers.image.title": "kubernel/traefik",
            "org.opencontainers.image.version": "3.6.12",
            "org.opencontainers.image.source": "https://github.com/kubernel/kubernel",
        },
    }


# -- the objects -------------------------------------------------------------------------
def test_entry_url() -> None:
    assert ingress.entry_url() == "http://10.246.0.1"
    assert ingress.entry_url("10.246.0.1", 8080) == "http://10.246.0.1:8080"


def test_static_configuration_for_event_streams() -> None:
    assert ingress.traefik_args() == TRAEFIK_ARGS


def test_a_write_timeout_would_end_streams_so_it_is_none() -> None:
    args = ingress.traefik_args(timeouts=ingress.Timeouts(write="30s"))
    assert "--entrypoints.web.transport.respondingtimeouts.writetimeout=30s" in args


def test_namespace_account_and_class() -> None:
    assert ingress.namespace_manifest() == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "kubernel-ingress", "labels": LABELS},
    }
    assert ingress.service_account() == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "automountServiceAccountToken": True,
        "metadata": {"name": "traefik", "namespace": "kubernel-ingress", "labels": LABELS},
    }
    assert ingress.ingress_class() == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "traefik", "labels": LABELS},
        "spec": {"controller": "traefik.io/ingress-controller"},
    }


def test_rbac_reads_what_the_provider_watches_and_writes_only_ingress_status() -> None:
    read = ["get", "list", "watch"]
    assert ingress.cluster_role() == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "kubernel-ingress-traefik", "labels": LABELS},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
        ],
    }
    assert ingress.cluster_role_binding() == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "kubernel-ingress-traefik", "labels": LABELS},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "kubernel-ingress-traefik",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": "kubernel-ingress"}],
    }


def test_deployment() -> None:
    assert ingress.deployment() == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traefik", "namespace": "kubernel-ingress", "labels": LABELS},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "serviceAccountName": "traefik",
                    "nodeSelector": {"kubernel.io/real-node": "true"},
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "traefik",
                            "image": "registry.kubernel.test/kubernel/traefik:3.6.12",
                            "imagePullPolicy": "IfNotPresent",
                            "args": TRAEFIK_ARGS,
                            "ports": [
                                {
                                    "name": "web",
                                    "containerPort": 8000,
                                    "hostPort": 80,
                                    "hostIP": "10.246.0.1",
                                    "protocol": "TCP",
                                },
                                {"name": "ping", "containerPort": 8082, "protocol": "TCP"},
                            ],
                            "readinessProbe": {**PROBE, "periodSeconds": 2, "failureThreshold": 1},
                            "livenessProbe": {**PROBE, "periodSeconds": 10, "failureThreshold": 3},
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 65532,
                                "runAsGroup": 65532,
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def test_manifests_in_apply_order_and_what_uninstall_waits_for() -> None:
    assert [(m["kind"], m["metadata"]["name"]) for m in ingress.manifests()] == [
        ("Namespace", "kubernel-ingress"),
        ("ServiceAccount", "traefik"),
        ("ClusterRole", "kubernel-ingress-traefik"),
        ("ClusterRoleBinding", "kubernel-ingress-traefik"),
        ("IngressClass", "traefik"),
        ("Deployment", "traefik"),
    ]
    assert ingress.cluster_scoped() == [
        "namespace/kubernel-ingress",
        "clusterrole/kubernel-ingress-traefik",
        "clusterrolebinding/kubernel-ingress-traefik",
        "ingressclass/traefik",
    ]


@pytest.mark.parametrize(
    ("status", "generation", "ready"),
    [
        ({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}, 2, True),
        ({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}, 2, False),
        ({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1}, 2, False),
        ({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1}, 2, False),
        ({}, 1, False),
    ],
)
def test_deployment_ready(status: dict[str, int], generation: int, ready: bool) -> None:
    assert ingress.deployment_ready(status, generation) is ready


def ingress_object(
    namespace: str, name: str, class_name: str | None = None, annotation: str | None = None
) -> dict:
    meta: dict = {"namespace": namespace, "name": name}
    if annotation:
        meta["annotations"] = {"kubernetes.io/ingress.class": annotation}
    return {"metadata": meta, "spec": {"ingressClassName": class_name} if class_name else {}}


def test_the_ingresses_that_keep_traefik_in_use() -> None:
    found = [
        ingress_object("kubernel", "kubernel-api", "traefik"),
        ingress_object("t-1", "backend", "traefik"),  # its namespace is being deleted
        ingress_object("web", "old", annotation="traefik"),  # the pre-IngressClass annotation
        ingress_object("web", "nginx", "nginx"),
        ingress_object("web", "classless"),
    ]
    assert ingress.users(found, terminating={"t-1"}) == ["kubernel/kubernel-api", "web/old"]
    assert ingress.users([], terminating=set()) == []
