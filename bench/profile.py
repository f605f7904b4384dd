"""py-spy profiles of the services while a phase runs (``python -m bench --profile``):
the collapsed stacks in .local/bench/profiles, and a summary of where the time went."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from kubernel_testbed.launcher import say

# Frames every sample of a service passes through (start-up, the event loop): they say nothing.
_ALWAYS = (
    "_run_module_as_main",
    "_run_code",
    "<module>",
    "main (",
    "run (asyncio/runners.py",
    "run_until_complete",
    "run_forever",
    "_run_once",
    "_run (asyncio/events.py",
)


def summary(collapsed: str, top: int = 12) -> str:
    """The functions with the most samples, on their own (self) and with what they call."""
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            within[frame] += samples
    if not total:
        return "no samples"
    below_the_loop = [(f, n) for f, n in within.most_common() if not f.startswith(_ALWAYS)]
    return "\n".join(
        [f"{total} samples", "self:"]
        + [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
        + ["with callees:"]
        + [f"  {n / total:6.1%}  {f}" for f, n in below_the_loop[:top]]
    )


@contextlib.asynccontextmanager
async def profiled(enabled: bool, pids: dict[str, int], phase: str, into: Path) -> AsyncIterator[None]:
    """Record each of ``pids`` with py-spy for as long as the block runs."""
    if not enabled:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    into.mkdir(parents=True, exist_ok=True)
    recorders = {
        name: await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "50",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(into / f"{phase}-{name}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }
    say(f"profiling {', '.join(pids)} during {phase} (py-spy)")
    try:
        yield
    finally:
        for name, recorder in recorders.items():
            recorder.send_signal(2)  # SIGINT: py-spy writes what it has and exits
            await asyncio.wait_for(recorder.wait(), 60)
            out = into / f"{phase}-{name}.txt"
            if out.exists():  # file names in the stacks need not be UTF-8
                text = out.read_text(errors="replace")
                (into / f"{phase}-{name}.summary.txt").write_text(summary(text) + "\n")
