"""Fuzzing the REST API with schemathesis against its own OpenAPI document.

Every operation gets a bounded number of generated requests (valid and invalid),
signed like the Backend.AI client signs them, sent to a real API process: no
response may be a 5xx, and every response must match the document (status code,
content type, headers, body schema).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from kubernel_api import keypairs as kp
from kubernel_api.signing import SignedRequest, authorization_header, signature

from ..api_client import VERSION
from ..api_process import ApiProcess
from ..conftest import KEYPAIRS

EXAMPLES_PER_OPERATION = 40
SUPERADMIN = kp.Keypair(access_key="AKIAFUZZROOT", secret_key="secret-of-the-fuzzer-0123",
                        role=kp.Role.SUPERADMIN)


class BackendAISignature(requests.auth.AuthBase):
    """Signs the request exactly as sent: method, path and query, Date, Host, content type."""

    def __init__(self, keypair: kp.Keypair) -> None:
        self.keypair = keypair

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url)
        when = datetime.now(timezone.utc).isoformat()
        content_type = request.headers.get("Content-Type") or "application/octet-stream"
        signed = SignedRequest(request.method, url.path + (f"?{url.query}" if url.query else ""), when,
                               url.netloc, content_type, VERSION)
        request.headers.update({
            "Date": when, "X-BackendAI-Version": VERSION,
            "Authorization": authorization_header(self.keypair.access_key,
                                                  signature(signed, self.keypair.secret_key, "sha256"))})
        return request


@pytest.fixture(scope="module")
def fuzzed_api(kubeconfig: str, kubectl_bin: str, operator: object,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """An API process on its own namespace (t-*, so sessions do start) with a superadmin keypair."""
    namespace = f"t-fuzz-{uuid.uuid4().hex[:6]}"
    kubectl = [kubectl_bin, f"--kubeconfig={kubeconfig}"]
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    secrets = [kp.to_secret(SUPERADMIN)] + [kp.to_secret(kp.Keypair(
        access_key=f"AKIATEST{name.upper()}", secret_key=f"secret-of-{name}-0123456789", role=role, domain=domain,
        groups=groups, limits=limits)) for name, (role, domain, groups, limits) in KEYPAIRS.items()]
    subprocess.run([*kubectl, "apply", "-n", namespace, "-f", "-"], check=True, capture_output=True, text=True,
                   input=json.dumps({"apiVersion": "v1", "kind": "List", "items": secrets}))
    server = ApiProcess(kubeconfig, namespace, tmp_path_factory.mktemp("fuzz"), {"KUBERNEL_API_MAX_WAIT": "2"})
    server.start()
    yield server
    server.stop()
    subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"], capture_output=True)


@pytest.fixture(scope="module")
def api_schema(fuzzed_api: ApiProcess):
    return schemathesis.openapi.from_url(fuzzed_api.base_url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
def test_the_api_keeps_to_its_document(case: schemathesis.Case, fuzzed_api: ApiProcess) -> None:
    case.call_and_validate(base_url=fuzzed_api.base_url, auth=BackendAISignature(SUPERADMIN), timeout=30)


def test_the_fuzzed_api_logged_no_crash(fuzzed_api: ApiProcess) -> None:
    """Runs after the fuzzing (file order): no unhandled exception reached the log."""
    log = Path(fuzzed_api.log).read_text()
    assert "Traceback" not in log and "Error handling request" not in log, log[-5000:]
