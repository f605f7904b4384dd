"""``python -m kubernel_runner``: serve, bind the session, run until SIGTERM or the kernel's end."""

from __future__ import annotations

import os
import socket

# The port is open before anything heavy is imported: a readiness probe that comes
# early waits in the backlog (and then in /health?wait) instead of being refused,
# which the kubelet would record as a failed probe (a Warning Event).
LISTENER = socket.create_server(("0.0.0.0", int(os.environ.get("KUBERNEL_RUNNER_PORT") or 0)), backlog=128)

import asyncio  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from aiohttp import web  # noqa: E402

# jupyter_client looks up the kernel spec through IPython, which makes ~/.ipython as
# root in the kernel user's home; the runner's own goes elsewhere (the kernel's env drops it).
os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="kubernel-runner-ipython-")

from .server import Runner, make_app  # noqa: E402  (after IPYTHONDIR)
from .settings import RunnerSettings  # noqa: E402


async def serve(settings: RunnerSettings) -> int:
    runner = Runner(settings)
    site_runner = web.AppRunner(make_app(runner), shutdown_timeout=2, access_log=None)  # probes: 1/s
    await site_runner.setup()
    await web.SockSite(site_runner, LISTENER).start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.stopping.set)
    binding = asyncio.create_task(runner.bind_from_directory())
    binding.add_done_callback(lambda task: _bind_failed(task, runner))
    await runner.stopping.wait()
    if runner.exit_code is None:
        print("SIGTERM received; exiting", flush=True)
    binding.cancel()
    await runner.kernel.stop()
    await site_runner.cleanup()
    return runner.exit_code or 0


def _bind_failed(task: asyncio.Task, runner: Runner) -> None:
    """No interpreter, no kernel: the container ends (exit 1) and its session with it."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("kubernel.runner").error("the kernel did not start", exc_info=task.exception())
        runner.exit_code = 1
        runner.stopping.set()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(RunnerSettings.from_env())))


if __name__ == "__main__":
    main()
