"""The admin command against the real API server: the bootstrap keypair written 0600, and
rotated with one command while a real API serves (the old key refused, the new one taken);
and no secret in the API's log on the way."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kubernel_api import keypairs as kp
from kubernel_api.keys import KEYPAIRS
from kubernel_testkit.api_client import ApiClient
from kubernel_testkit.waiting import wait_until

from .conftest import RunningApi

pytestmark = pytest.mark.integration


def admin(kubeconfig: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBERNEL_KEYPAIR_NAMESPACE": namespace}
    return subprocess.run(
        [sys.executable, "-m", "kubernel_api", "keypair", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def credentials(env_file: Path) -> tuple[str, str]:
    values = dict(
        line.removeprefix("export ").split("=", 1)
        for line in env_file.read_text().splitlines()
        if line.startswith("export ")
    )
    return shlex.split(values["BACKEND_ACCESS_KEY"])[0], shlex.split(values["BACKEND_SECRET_KEY"])[0]


async def test_the_bootstrap_key_is_private_and_rotates_with_one_command(
    api: RunningApi, kubeconfig: str, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env_file = tmp_path / "backend.env"
    env_file.write_text("left over, world-readable\n")
    env_file.chmod(0o644)
    made = admin(kubeconfig, namespace, "bootstrap", "--env-file", str(env_file), "--endpoint", api.base_url)
    assert made.returncode == 0, made.stderr
    assert env_file.stat().st_mode & 0o777 == 0o600  # rewritten private, whatever it was
    access_key, old_secret = credentials(env_file)

    def as_root(secret: str) -> ApiClient:
        keypair = kp.Keypair(access_key=access_key, secret_key=secret, role=kp.Role.SUPERADMIN)
        return ApiClient(api.base_url, keypair, api.http)

    async def known_with(secret: str) -> bool:
        # Asked of the API's keypair index, not by signing: failed signatures would count.
        known = api.app[KEYPAIRS].get(access_key)
        return known is not None and known.secret_key == secret

    await wait_until(lambda: known_with(old_secret), timeout=15, what="the API to know the bootstrap keypair")
    assert (await as_root(old_secret).call("GET", "/kernel/no-such-session")).status == 404

    rotated = admin(kubeconfig, namespace, "rotate", "--env-file", str(env_file), "--endpoint", api.base_url)
    assert rotated.returncode == 0, rotated.stderr
    assert old_secret not in rotated.stdout
    assert env_file.stat().st_mode & 0o777 == 0o600
    same_key, new_secret = credentials(env_file)
    assert same_key == access_key and new_secret != old_secret
    await wait_until(lambda: known_with(new_secret), timeout=15, what="the API to take the new secret key")
    assert (await as_root(new_secret).call("GET", "/kernel/no-such-session")).status == 404
    refused = await as_root(old_secret).call("GET", "/kernel/no-such-session")
    assert refused.status == 401

    # Nothing the API logged on the way (successes, 401s, keypair changes) names a secret.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert access_key in logged or "401" in logged  # something was logged to look at
    for secret in (old_secret, new_secret, *(k.secret_key for k in api.keypairs.values())):
        assert secret not in logged

    unknown = admin(kubeconfig, namespace, "rotate", "AKIANOSUCHKEY0000000")
    assert unknown.returncode == 1 and "no keypair" in unknown.stderr
