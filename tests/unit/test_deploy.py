"""`make deploy`'s pure parts: the values, the helm command line, the env file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kubernel_testbed import deploy


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "registry.kubernel.test/kubernel/kubernel@sha256:" + "0" * 64,
            ("registry.kubernel.test/kubernel/kubernel", "sha256:" + "0" * 64),
        ),
        ("localhost:5000/k@sha256:" + "f" * 64, ("localhost:5000/k", "sha256:" + "f" * 64)),
    ],
)
def test_an_image_pinned_by_digest_splits(reference: str, expected: tuple[str, str]) -> None:
    assert deploy.split_image(reference) == expected


@pytest.mark.parametrize("reference", ["registry.kubernel.test/kubernel/kubernel:dev", "k@md5:abc", ""])
def test_an_image_not_pinned_by_digest_is_refused(reference: str) -> None:
    with pytest.raises(ValueError, match="pinned by digest"):
        deploy.split_image(reference)


def test_the_chart_values() -> None:
    table = {"aliases": {"python:3.6": {"image": "registry.kubernel.test/kubernel/python:3.11"}}}
    ingress = {"enabled": True, "className": "traefik"}
    assert deploy.chart_values("r/k@sha256:" + "1" * 64, table, ingress) == {
        "image": {"repository": "r/k", "digest": "sha256:" + "1" * 64, "pullPolicy": "IfNotPresent"},
        "images": {"aliases": {"python:3.6": {"image": "registry.kubernel.test/kubernel/python:3.11"}}},
        "ingress": {"enabled": True, "className": "traefik"},
        "networkPolicy": {"dns": [{"ipBlock": {"cidr": "10.246.0.1/32"}}]},  # CoreDNS on the node address
    }


def test_the_helm_command_waits_for_the_rollout() -> None:
    command = deploy.helm_upgrade_command(Path("/b/helm"), Path("/s/kubeconfig"), Path("/t/values.yaml"))
    assert command == [
        "/b/helm",
        "--kubeconfig=/s/kubeconfig",
        "upgrade",
        "--install",
        "kubernel",
        str(deploy.CHART),
        "--namespace",
        "kubernel",
        "--create-namespace",
        "--values",
        "/t/values.yaml",
        "--wait",
        "--timeout=5m",
    ]


def test_the_env_file_and_the_bootstrap_secret() -> None:
    secret = {
        "data": {
            "access-key": base64.b64encode(b"AKIAEXAMPLE0000000001").decode(),
            "secret-key": base64.b64encode(b"s" * 40).decode(),
        }
    }
    access, secret_key = deploy.decode_keypair(secret)
    text = deploy.env_file_text(deploy.Deployment("http://10.0.0.1:80", "r/k@sha256:0", access, secret_key))
    assert text.splitlines()[1:] == [
        "export BACKEND_ENDPOINT=http://10.0.0.1:80",
        "export BACKEND_ACCESS_KEY=AKIAEXAMPLE0000000001",
        f"export BACKEND_SECRET_KEY={'s' * 40}",
        "export BACKEND_ENDPOINT_TYPE=api",
    ]


def test_the_credentials_file_is_private_from_the_start(tmp_path: Path) -> None:
    target = tmp_path / "local" / "deploy.env"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)  # a file left by an older version keeps no wider mode
    deploy.write_private(target, "export BACKEND_SECRET_KEY=s\n")
    assert target.read_text() == "export BACKEND_SECRET_KEY=s\n"
    assert target.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "new" / "deploy.env"
    deploy.write_private(fresh, "x")
    assert fresh.stat().st_mode & 0o777 == 0o600
