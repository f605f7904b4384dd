"""python -m kubernel_api [serve | keypair ...]."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from kubernel.client.connect import connect
from kubernel.metrics import serve_metrics
from kubernel.runner import MIN_KEY_BYTES, MISSING_KEY

from . import cli
from .app import make_app
from .keys import METRICS
from .kube import WATCHES, Kube
from .settings import ApiSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubernel_api", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the API service (the default)")
    cli.add_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = ApiSettings.from_env()
    if args.command == "keypair":
        return asyncio.run(_admin(args, settings))
    if len(settings.runner_key) < MIN_KEY_BYTES:
        print(MISSING_KEY, file=sys.stderr)
        return 2
    asyncio.run(_serve(settings))
    return 0


async def _admin(args: argparse.Namespace, settings: ApiSettings) -> int:
    async with await connect() as api:
        return await cli.run(args, Kube.of(api, settings))


async def _serve(settings: ApiSettings) -> None:
    # The calls in flight, and the two watches, each hold a connection of their own.
    async with await connect(settings.kube_concurrency + WATCHES) as api:
        app = make_app(settings, Kube.of(api, settings))
        # aiohttp arms its keep-alive timer when a connection opens and after each answer:
        # a client idle, or still sending its request head, that long is closed.
        runner = web.AppRunner(
            app, shutdown_timeout=5, handle_signals=True, keepalive_timeout=settings.connection_idle_seconds
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        metrics = None
        if settings.metrics_port:
            metrics = await serve_metrics(app[METRICS].registry, settings.host, settings.metrics_port)
        logging.getLogger("kubernel.api").info(
            "kubernel API on http://%s:%d (sessions in namespace %s, keypairs in %s)",
            settings.host,
            settings.port,
            settings.namespace,
            settings.keypairs_in,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logging.getLogger("kubernel.api").info("shutting down: closing event streams")
        await runner.cleanup()
        if metrics is not None:
            await metrics.cleanup()


if __name__ == "__main__":
    sys.exit(main())
