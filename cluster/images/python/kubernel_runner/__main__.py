"""``python -m kubernel_runner``: serve, bind the session, run until SIGTERM or the kernel's end.

Exit status: 0 after SIGTERM (or SIGINT); 1 when the kernel died or did not start;
2 for unusable settings. ``--check`` only checks that the runner and the kernel it
would start are installed (the image build runs it), and prints the kernel's command.
"""

from __future__ import annotations

import os
import socket
import sys


def early_listener(environ: dict[str, str] | os._Environ, argv: list[str]) -> socket.socket | None:
    """The port, open before anything heavy is imported: a readiness probe that comes
    early waits in the backlog (and then in /health?wait) instead of being refused,
    which the kubelet would record as a failed probe (a Warning Event). None when not
    serving (options given) or the port is unusable (the settings then say why)."""
    try:
        port = int(environ.get("KUBERNEL_RUNNER_PORT", ""))
    except ValueError:
        return None
    if argv or not 0 < port < 65536:
        return None
    return socket.create_server(("0.0.0.0", port), backlog=128)


def not_dumpable() -> bool:
    """PR_SET_DUMPABLE 0: the user's code runs as our user (the restricted profile allows one
    user), so without this it could ptrace the runner or read its memory and environment
    (/proc/<pid>/mem, environ) and take its token; a non-dumpable process's /proc files
    belong to root. The interpreter the runner starts is dumpable again (execve resets it)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False


NOT_DUMPABLE = not_dumpable()
LISTENER = early_listener(os.environ, sys.argv[1:])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from aiohttp import web  # noqa: E402

from . import reaper  # noqa: E402
from .kernel import KERNEL_NAME  # noqa: E402
from .server import Runner, make_app  # noqa: E402
from .settings import RunnerSettings  # noqa: E402

log = logging.getLogger("kubernel.runner")


async def serve(settings: RunnerSettings) -> int:
    reaper.become_subreaper()
    runner = Runner(settings)
    site_runner = web.AppRunner(make_app(runner), shutdown_timeout=2, access_log=None)  # probes: 1/s
    await site_runner.setup()
    if LISTENER is not None:
        await web.SockSite(site_runner, LISTENER).start()
    else:
        await web.TCPSite(site_runner, "0.0.0.0", settings.port).start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.stopping.set)
    reaping = asyncio.create_task(reaper.reap_forever(settings.reap_seconds))
    binding = asyncio.create_task(runner.warm_up() if settings.warm else runner.bind_from_directory())
    binding.add_done_callback(lambda task: _bind_failed(task, runner))
    await runner.stopping.wait()
    if runner.exit_code is None:
        print("SIGTERM received; exiting", flush=True)
    binding.cancel()
    reaping.cancel()
    await runner.stop()
    await site_runner.cleanup()
    return runner.exit_code or 0


def _bind_failed(task: asyncio.Task, runner: Runner) -> None:
    """No interpreter, no kernel: the container ends (exit 1) and its session with it."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the kernel did not start", exc_info=task.exception())
        runner.exit_code = 1
        runner.stopping.set()


def check() -> int:
    """The kernel spec jupyter_client would launch, and that its interpreter imports ipykernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv = list(KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv)
    if argv[0] in ("python", "python3", f"python3.{sys.version_info[1]}"):
        argv[0] = sys.executable  # as jupyter_client does when it launches the kernel
    print(f"kubernel_runner, python {sys.version.split()[0]}: kernel {KERNEL_NAME!r} runs {argv}", flush=True)
    return subprocess.run([argv[0], "-c", "import ipykernel_launcher"], check=False).returncode


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m kubernel_runner",
        description=(
            "Kubernel's code runner: serves the session's code calls on KUBERNEL_RUNNER_PORT (docs/runner.md)."
        ),
    )
    parser.add_argument("--check", action="store_true", help="check the installation and exit")
    args = parser.parse_args()
    if args.check:
        sys.exit(check())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = RunnerSettings.from_env()
    except ValueError as exc:
        print(f"kubernel_runner: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    # jupyter_client looks up the kernel spec through IPython, which would make ~/.ipython
    # as root in the kernel user's home; the runner's own goes elsewhere (the kernel's
    # environment drops it).
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="kubernel-runner-ipython-")
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
