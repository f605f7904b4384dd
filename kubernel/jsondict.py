"""The type of a decoded JSON object: Kubernetes manifests, request and response bodies."""

from typing import Any

JsonDict = dict[str, Any]
