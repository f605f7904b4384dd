"""Generate the KernelSession CustomResourceDefinition from the pydantic model.

``python -m kubernel.crd`` prints it; crds/kernelsessions.kubernel.io.yaml is its output
and tests/unit/test_crd.py fails when the two differ.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from . import resource
from .model import KernelSessionSpec, KernelSessionStatus
from .pool import KernelPoolSpec, KernelPoolStatus

_DROP = {"title", "$defs"}


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema."""
    if "$ref" in schema:
        target = copy.deepcopy(defs[schema["$ref"].rsplit("/", 1)[-1]])
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    out: dict[str, Any] = {}
    any_of = schema.get("anyOf")
    if any_of:
        variants = [v for v in any_of if v.get("type") != "null"]
        if len(variants) == 1:
            inner = _structural(variants[0], defs)
            out.update(inner)
            if len(variants) != len(any_of):
                out["nullable"] = True
        else:
            raise ValueError(f"cannot express anyOf {any_of} structurally")
    for key, value in schema.items():
        if key in _DROP or key == "anyOf":
            continue
        if key == "properties":
            out["properties"] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs)
        elif key == "additionalProperties" and isinstance(value, dict):
            out["additionalProperties"] = _structural(value, defs)
        elif key == "additionalProperties":
            continue  # structural schemas forbid unknown fields by pruning
        elif key == "const":
            out["enum"] = [value]
        elif key == "default" and value is None:
            continue
        elif key == "format" and value == "date-time":
            out["format"] = "date-time"
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out and "default" in out:
        del out["default"]  # nested object defaults are filled field by field
    return out


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _structural(raw, raw.get("$defs", {}))
    schema.pop("description", None)
    return schema


def crd() -> dict[str, Any]:
    spec = _schema(KernelSessionSpec)
    spec["description"] = "What the session runs: the fields of the create request."
    status = _schema(KernelSessionStatus)
    status["description"] = "What the operator observed; written only by the operator and the API."
    columns = [
        {
            "name": "Session",
            "type": "string",
            "jsonPath": ".spec.sessionId",
            "description": "Client session token",
        },
        {
            "name": "Owner",
            "type": "string",
            "jsonPath": ".spec.owner.accessKey",
            "description": "Owner access key",
        },
        {"name": "Image", "type": "string", "jsonPath": ".spec.image", "description": "Requested image"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Lifecycle phase"},
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": ".status.reason",
            "description": "Reason of the last event",
        },
        {
            "name": "Waiting",
            "type": "string",
            "jsonPath": ".status.waiting",
            "description": "Why it waits for a node (the scheduler's words)",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Pool",
            "type": "string",
            "jsonPath": ".status.pool",
            "description": "The KernelPool its kernel was claimed from",
            "priority": 1,
        },
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.PLURAL}.{resource.GROUP}",
            "labels": {resource.LABEL_PART_OF: "kubernel", resource.LABEL_MANAGED_BY: "kubernel"},
        },
        "spec": {
            "group": resource.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.KIND,
                "plural": resource.PLURAL,
                "singular": resource.SINGULAR,
                "shortNames": resource.SHORT_NAMES,
                "categories": ["kubernel"],
            },
            "versions": [
                {
                    "name": resource.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": 'A compute session ("kernel") of the Backend.AI API, run as Pods.',
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def pool_crd() -> dict[str, Any]:
    """The KernelPool CRD: printer columns, and a scale subresource (kubectl scale, an HPA)."""
    spec = _schema(KernelPoolSpec)
    spec["description"] = "Which kernels the pool keeps warm, and how many."
    status = _schema(KernelPoolStatus)
    status["description"] = "What the operator observed; written only by the operator."
    columns = [
        {"name": "Image", "type": "string", "jsonPath": ".spec.image", "description": "Image alias"},
        {
            "name": "Desired",
            "type": "integer",
            "jsonPath": ".spec.replicas",
            "description": "Warm kernels to keep",
        },
        {"name": "Ready", "type": "integer", "jsonPath": ".status.ready", "description": "Ready to claim"},
        {"name": "Starting", "type": "integer", "jsonPath": ".status.starting", "description": "Starting"},
        {"name": "Claimed", "type": "integer", "jsonPath": ".status.claimed", "description": "Claims"},
        {"name": "Misses", "type": "integer", "jsonPath": ".status.misses", "description": "Cold starts"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.POOL_PLURAL}.{resource.GROUP}",
            "labels": {resource.LABEL_PART_OF: "kubernel", resource.LABEL_MANAGED_BY: "kubernel"},
        },
        "spec": {
            "group": resource.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.POOL_KIND,
                "plural": resource.POOL_PLURAL,
                "singular": resource.POOL_SINGULAR,
                "shortNames": resource.POOL_SHORT_NAMES,
                "categories": ["kubernel"],
            },
            "versions": [
                {
                    "name": resource.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Warm kernels of one image and size, claimed by sessions.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated from kubernel/{module} by `python -m kubernel.crd`; do not edit.\n"
FILES = {
    "kernelsessions.kubernel.io.yaml": ("model.py", crd),
    "kernelpools.kubernel.io.yaml": ("pool.py", pool_crd),
}


def render(file: str = "kernelsessions.kubernel.io.yaml") -> str:
    module, make = FILES[file]
    return HEADER.format(module=module) + yaml.safe_dump(make(), sort_keys=False, width=120)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if len(sys.argv) > 1:  # python -m kubernel.crd <directory>: write every CRD file there
        for name in FILES:
            (Path(sys.argv[1]) / name).write_text(render(name))
    else:
        print(render(), end="")
