"""What both services' Prometheus metrics share: the process, platform and build-info
collectors, and the listener that serves a registry at ``/metrics`` on a port of its
own, apart from the API's (so an Ingress for the API does not publish it).

The exposition is prometheus_client's own (``generate_latest``); the listener runs in
the service's event loop, so collectors that read the service's state (the operator's
sessions by phase) read it on the thread that changes it.
"""

from __future__ import annotations

import platform

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from . import API_VERSION, __version__


def service_registry(prefix: str) -> CollectorRegistry:
    """A registry with the process and platform collectors and ``<prefix>_build_info``."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info(f"{prefix}_build", "The running Kubernel's version.", registry=registry).info(
        {"version": __version__, "api_version": API_VERSION, "python": platform.python_version()}
    )
    return registry


def metrics_app(registry: CollectorRegistry) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> web.AppRunner:
    """Serve ``registry`` at http://host:port/metrics until the returned runner is cleaned up."""
    runner = web.AppRunner(metrics_app(registry), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
