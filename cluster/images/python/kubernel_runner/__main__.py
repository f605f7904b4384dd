"""``python -m kubernel_runner``: serve, bind the session, run until SIGTERM or the kernel's end."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from .server import Runner, make_app
from .settings import RunnerSettings


async def serve(settings: RunnerSettings) -> int:
    runner = Runner(settings)
    site_runner = web.AppRunner(make_app(runner), shutdown_timeout=2, access_log=None)  # probes: 1/s
    await site_runner.setup()
    await web.TCPSite(site_runner, "0.0.0.0", settings.port).start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.stopping.set)
    binding = asyncio.create_task(runner.bind_from_directory())
    await runner.stopping.wait()
    if runner.exit_code is None:
        print("SIGTERM received; exiting", flush=True)
    binding.cancel()
    await runner.kernel.stop()
    await site_runner.cleanup()
    return runner.exit_code or 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(RunnerSettings.from_env())))


if __name__ == "__main__":
    main()
