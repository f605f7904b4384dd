"""The CRD in crds/ is the model's, and every field explains itself."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubernel.crd import crd, render

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "kernelsessions.kubernel.io.yaml"


def test_crd_file_is_generated_from_the_model() -> None:
    assert CRD_FILE.read_text() == render(), (
        "run: python -m kubernel.crd > crds/kernelsessions.kubernel.io.yaml"
    )
    assert yaml.safe_load(CRD_FILE.read_text()) == crd()


def _walk(schema: dict, path: str):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_every_field_has_a_type_and_a_description() -> None:
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for section in ("spec", "status"):
        for path, node in _walk(root["properties"][section], section):
            assert "type" in node, f"{path} has no type"
            if not path.endswith(("[]", "{}")):
                assert node.get("description"), f"{path} has no description"
