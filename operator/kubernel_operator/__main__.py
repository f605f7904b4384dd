"""python -m kubernel_operator: run the operator (kopf) with a liveness endpoint."""

from __future__ import annotations

import asyncio
import logging
import sys

import kopf

from kubernel.runner import MIN_KEY_BYTES, MISSING_KEY

from .handlers import register
from .settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings.from_env()
    if len(settings.runner_key) < MIN_KEY_BYTES:
        sys.exit(MISSING_KEY)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf reports every handler and timer run at INFO ("Timer 'deadlines' succeeded" at
    # every interval for every session); our own lines say what happened to sessions.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    register(kopf.get_default_registry(), settings)  # beside kopf's own login handlers
    asyncio.run(
        kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            peering_name=settings.peering or None,
            standalone=not settings.peering,
            liveness_endpoint=f"http://{settings.health_host}:{settings.health_port}/healthz",
        )
    )


if __name__ == "__main__":
    main()
