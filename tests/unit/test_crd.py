"""The CRD in crds/ is the model's, and every field explains itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubernel.crd import FILES, crd, pool_crd, render

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "kernelsessions.kubernel.io.yaml"


@pytest.mark.parametrize("file", sorted(FILES))
@pytest.mark.parametrize("folder", ["crds", "helm/kubernel/crds"])
def test_crd_files_are_generated_from_the_models(folder: str, file: str) -> None:
    path = ROOT / folder / file
    assert path.read_text() == render(file), "run: make crds"
    assert yaml.safe_load(path.read_text()) == FILES[file][1]()


def _walk(schema: dict, path: str):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("make", [crd, pool_crd])
def test_every_field_has_a_type_and_a_description(make) -> None:
    root = make()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for section in ("spec", "status"):
        for path, node in _walk(root["properties"][section], section):
            assert "type" in node, f"{path} has no type"
            if not path.endswith(("[]", "{}")):
                assert node.get("description"), f"{path} has no description"
