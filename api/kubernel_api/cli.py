"""Keypair administration: create, list, (de)activate, bootstrap."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import keypairs as kp
from .kube import Kube
from .limits import Limits


def add_commands(sub: argparse._SubParsersAction) -> None:
    keypair = sub.add_parser("keypair", help="manage API keypairs (Secrets in the keypair namespace)")
    commands = keypair.add_subparsers(dest="keypair_command", required=True)
    create = commands.add_parser("create", help="create a keypair and print its secret key (shown only once)")
    create.add_argument("--role", choices=[r.value for r in kp.Role], default="user")
    create.add_argument("--domain", default="default")
    create.add_argument(
        "--group", action="append", dest="groups", help="a group (repeat for more); default: default"
    )
    create.add_argument(
        "--limits",
        default="{}",
        help='JSON, e.g. \'{"cpu": "4", "memory": "16Gi", "gpu": 1, "clusterSize": 2, '
        '"concurrentSessions": 5, "totalCpu": "16", "totalMemory": "64Gi", "totalGpu": 2, "rateLimit": 5000}\'',
    )
    commands.add_parser("list", help="list keypairs (without secrets)")
    for verb in ("deactivate", "activate"):
        command = commands.add_parser(verb, help=f"{verb} a keypair")
        command.add_argument("access_key")
    boot = commands.add_parser("bootstrap", help="create the superadmin keypair once and write an env file")
    boot.add_argument("--env-file", required=True, type=Path)
    boot.add_argument("--endpoint", required=True)
    rotate = commands.add_parser(
        "rotate", help="give a keypair (default: the bootstrap superadmin) a new secret key, shown once"
    )
    rotate.add_argument("access_key", nargs="?", help="default: the bootstrap keypair")
    rotate.add_argument("--env-file", type=Path, help="rewrite this env file with the new key (0600)")
    rotate.add_argument("--endpoint", default="http://127.0.0.1:8090", help="BACKEND_ENDPOINT in --env-file")


def env_file_text(endpoint: str, keypair: kp.Keypair) -> str:
    return (
        f"# Backend.AI client settings for {endpoint} (superadmin). Keep this file private.\n"
        f"export BACKEND_ENDPOINT={shlex.quote(endpoint)}\n"
        f"export BACKEND_ACCESS_KEY={shlex.quote(keypair.access_key)}\n"
        f"export BACKEND_SECRET_KEY={shlex.quote(keypair.secret_key)}\n"
    )


async def run(args: argparse.Namespace, kube: Kube) -> int:
    now = datetime.now(UTC)
    command = args.keypair_command
    if command == "create":
        keypair = kp.generate(
            kp.Role(args.role),
            args.domain,
            tuple(args.groups or ["default"]),
            Limits.model_validate_json(args.limits),
            now,
        )
        await kube.create_keypair_secret(kp.to_secret(keypair))
        print(
            f"access key: {keypair.access_key}\nsecret key: {keypair.secret_key}\n"
            f"role: {keypair.role}  domain: {keypair.domain}  groups: {','.join(keypair.groups)}\n"
            "The secret key is shown only this once."
        )
        return 0
    if command == "list":
        rows = [kp.from_secret(s) for s in await kube.keypair_secrets()]
        print(f"{'ACCESS KEY':<22} {'ROLE':<11} {'DOMAIN':<12} {'GROUPS':<20} {'ACTIVE':<7} CREATED")
        for k in sorted(rows, key=lambda k: k.created_at or now):
            print(
                f"{k.access_key:<22} {k.role:<11} {k.domain:<12} {','.join(k.groups):<20} "
                f"{str(k.active).lower():<7} {k.created_at.isoformat(timespec='seconds') if k.created_at else ''}"
            )
        return 0
    if command in ("activate", "deactivate"):
        # Found by content, not by name: the chart's bootstrap Secret and Secrets
        # written with kubectl have names of their own.
        secret = kp.find_secret(await kube.keypair_secrets(), args.access_key)
        if secret is None:
            print(f"no keypair {args.access_key}", file=sys.stderr)
            return 1
        await kube.patch_keypair_secret(
            secret["metadata"]["name"], kp.activation_patch(command == "activate")
        )
        print(f"{args.access_key}: {command}d")
        return 0
    if command == "rotate":
        return await rotate(kube, args.access_key, args.env_file, args.endpoint)
    return await bootstrap(kube, args.env_file, args.endpoint, now)


def write_private(path: Path, text: str) -> None:
    """Write a credentials file readable by its owner only (0600, whatever it was before)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


async def rotate(kube: Kube, access_key: str | None, env_file: Path | None, endpoint: str) -> int:
    """A new secret key for ``access_key`` (None: the bootstrap keypair): the old one is
    refused from the next request, and the streams it opened close."""
    found = [
        s
        for s in await kube.keypair_secrets()
        if (access_key is None and (s["metadata"].get("labels") or {}).get(kp.LABEL_BOOTSTRAP) == "true")
        or (access_key is not None and kp.find_secret([s], access_key) is not None)
    ]
    if not found:
        print(f"no keypair {access_key or '(bootstrap)'}", file=sys.stderr)
        return 1
    keypair = kp.from_secret(found[0]).model_copy(update={"secret_key": kp.new_secret_key()})
    await kube.patch_keypair_secret(found[0]["metadata"]["name"], kp.rotation_patch(keypair.secret_key))
    if env_file is not None:
        write_private(env_file, env_file_text(endpoint, keypair))
        print(f"{keypair.access_key}: new secret key written to {env_file}")
    else:
        print(
            f"access key: {keypair.access_key}\nsecret key: {keypair.secret_key}\nThe secret key is shown only this once."
        )
    return 0


async def bootstrap(kube: Kube, env_file: Path, endpoint: str, now: datetime) -> int:
    existing = [
        s
        for s in await kube.keypair_secrets()
        if (s["metadata"].get("labels") or {}).get(kp.LABEL_BOOTSTRAP) == "true"
    ]
    if existing:
        keypair = kp.from_secret(existing[0])
        if env_file.exists() and keypair.access_key in env_file.read_text():
            print(f"[kubernel] superadmin keypair {keypair.access_key}: credentials in {env_file}")
            return 0
    else:
        keypair = kp.generate(kp.Role.SUPERADMIN, "default", ("default",), Limits(), now)
        await kube.create_keypair_secret(kp.to_secret(keypair, bootstrap=True))
    write_private(env_file, env_file_text(endpoint, keypair))
    print(
        f"[kubernel] superadmin keypair created; `source {env_file}` sets:\n{env_file_text(endpoint, keypair)}",
        end="",
    )
    return 0
