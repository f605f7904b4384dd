"""The Python kernel image's main process, until the code runner replaces it.

It says it is ready, then waits. On SIGTERM (a session destroyed, a Pod deleted)
it says so and exits 0, so the kubelet records a clean exit within the grace
period rather than a kill (exit code 137) at its end.
"""

import os
import signal
import sys


def stop(signum: int, _frame: object) -> None:
    print("SIGTERM received; exiting", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print(f"kernel ready: pid {os.getpid()}, python {sys.version.split()[0]}", flush=True)
while True:
    signal.pause()
