"""The parts of the Helm chart's values schema that are models of ours, generated.

``python -m kubernel.chartschema`` writes the ``images`` and ``pools`` properties of
helm/kubernel/values.schema.json from ``ImageTable`` and ``KernelPoolSpec`` (``make crds`` runs it);
tests/unit/test_chart.py fails when the two differ, so the chart accepts exactly
what the services load.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .images import ImageTable
from .pool import KernelPoolSpec

VALUES_SCHEMA = Path(__file__).resolve().parents[1] / "helm" / "kubernel" / "values.schema.json"


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Pydantic JSON Schema with its ``$defs`` resolved in place and titles dropped
    (a ``$ref`` into ``$defs`` would not resolve inside the chart's schema)."""
    if "$ref" in schema:
        target = copy.deepcopy(defs[schema["$ref"].rsplit("/", 1)[-1]])
        return _inline({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "$defs") or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {k: _inline(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _inline(value, defs)
        elif key == "anyOf":
            out[key] = [_inline(v, defs) for v in value]
        else:
            out[key] = value
    return out


def _model_schema(model: type[ImageTable] | type[KernelPoolSpec]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _inline(raw, raw.get("$defs", {}))


def images_schema() -> dict[str, Any]:
    return _model_schema(ImageTable)


def pools_schema() -> dict[str, Any]:
    """``pools``: KernelPool name -> its spec (templates/kernelpools.yaml)."""
    return {
        "type": "object",
        "description": "Warm pools: KernelPool name -> its spec (docs/pools.md).",
        "propertyNames": {"pattern": "^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$"},
        "additionalProperties": _model_schema(KernelPoolSpec),
    }


def with_images(values_schema: dict[str, Any]) -> dict[str, Any]:
    updated = copy.deepcopy(values_schema)
    updated["properties"]["images"] = images_schema()
    updated["properties"]["pools"] = pools_schema()
    return updated


def main() -> None:
    schema = json.loads(VALUES_SCHEMA.read_text())
    VALUES_SCHEMA.write_text(json.dumps(with_images(schema), indent=2) + "\n")


if __name__ == "__main__":
    main()
