"""Pure parts of the test bed: certificates, stage rendering, pull decisions, argv."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography import x509

from kubernel.images import registry_of
from kubernel_testbed import components, pki
from kubernel_testbed.images import is_unpullable, pull_decision
from kubernel_testbed.settings import SimulatedDelays
from kubernel_testbed.stages import render_kwok_config


def test_certificates_chain_to_the_ca_and_admin_is_a_cluster_admin() -> None:
    keys = pki.generate()
    ca = x509.load_pem_x509_certificate(keys.ca_cert)
    serving = x509.load_pem_x509_certificate(keys.serving_cert)
    admin = x509.load_pem_x509_certificate(keys.admin_cert)
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]


def test_stages_render_with_the_configured_delays() -> None:
    docs = list(yaml.safe_load_all(render_kwok_config(SimulatedDelays(pull=1234, stop=0))))
    stages = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Stage"}
    assert stages["pod-pulled"]["spec"]["delay"]["durationMilliseconds"] == 1234
    assert stages["pod-delete"]["spec"]["delay"]["durationMilliseconds"] == 0
    assert {
        "pod-accept",
        "pod-pulling",
        "pod-image-present",
        "pod-created",
        "pod-started",
        "pod-pull-failed",
        "pod-pull-backoff",
        "pod-exit",
        "pod-delete",
    } <= set(stages)


def test_a_delay_token_without_a_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="@WARP_MS@"):
        render_kwok_config(SimulatedDelays(), template="a: 1\n---\nb: @WARP_MS@\n")


def test_delays_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNEL_SIM_PULL_MS", "0")
    assert SimulatedDelays.from_env().pull == 0
    assert SimulatedDelays.from_env().start == SimulatedDelays().start


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("python:3.11", "docker.io"),
        ("library/python", "docker.io"),
        ("registry.example/kernels/python:3", "registry.example"),
        ("localhost:5000/x", "localhost:5000"),
    ],
)
def test_registry_of(image: str, host: str) -> None:
    assert registry_of(image) == host


@pytest.mark.parametrize(
    ("images", "node", "decision"),
    [
        (["a.io/x:1"], set(), "absent"),
        (["a.io/x:1"], {"a.io/x:1"}, "present"),
        (["a.io/x:1", "b.io/y"], {"a.io/x:1"}, "absent"),
        (["a.io/x:1", "nope.invalid/y"], {"a.io/x:1"}, "unpullable"),
        (["nope.invalid:443/y"], set(), "unpullable"),
    ],
)
def test_pull_decision(images: list[str], node: set[str], decision: str) -> None:
    assert pull_decision(images, node) == decision
    assert is_unpullable(images[-1]) == (decision == "unpullable")


def test_every_component_listens_on_loopback_only() -> None:
    layout = components.Layout(state=Path("/s"), bin=Path("/b"))
    ports = components.Ports(etcd_client=1, etcd_peer=2, apiserver=3, kwok=4)
    argv = [
        *components.etcd(layout, ports),
        *components.kube_apiserver(layout, ports),
        *components.kwok(layout, ports),
    ]
    urls = [
        a.split("=", 1)[1] for a in argv if a.startswith(("--listen-", "--bind-address", "--server-address"))
    ]
    assert urls and all(u == "" or "127.0.0.1" in u for u in urls)
    assert "--authorization-mode=RBAC" in components.kube_apiserver(layout, ports)


def test_simulated_nodes_renew_their_leases() -> None:
    """Without Lease renewals the node lifecycle controller marks every node, and
    with it every Pod, NotReady after its grace period (seen: every ~55 s)."""
    docs = list(yaml.safe_load_all(render_kwok_config(SimulatedDelays())))
    (config,) = [d for d in docs if d["kind"] == "KwokConfiguration"]
    assert 0 < config["options"]["nodeLeaseDurationSeconds"] <= 40
