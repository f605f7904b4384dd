"""Runs under the Backend.AI 19.09 client's own virtualenv (see requirements-bai19.txt).

Usage: python bai19_scenario.py <token> <image> [--execute]; reads BACKEND_* from the environment
(--execute: run code too, for an image with the code runner).
Prints one JSON object with what the client saw; the pytest side asserts on it.
"""

import asyncio
import json
import sys

from ai.backend.client.session import AsyncSession


async def follow(kernel, events, until, connected=None):
    async with kernel.stream_events() as response:
        if connected is not None:
            connected.set()
        async for event in response.fetch_events():
            events.append({"event": event["event"], "id": event.get("id"), "data": json.loads(event["data"])})
            if event["event"] == until:
                return


async def main(token, image, execute):
    out = {}
    async with AsyncSession() as session:
        out["hello"] = await session.Kernel.hello()
        kernel = await session.Kernel.get_or_create(image, client_token=token, enqueue_only=True)
        out["created"] = {"kernelId": kernel.kernel_id, "created": kernel.created, "status": kernel.status}
        events = []
        await asyncio.wait_for(follow(kernel, events, "kernel_started"), 60)
        again = await session.Kernel.get_or_create(image, client_token=token)
        out["again"] = {"kernelId": again.kernel_id, "created": again.created, "status": again.status}
        out["info"] = await kernel.get_info()
        if execute:  # code runs: the API reaches the kernel's runner (through its NetworkPolicy)
            out["executed"] = await kernel.execute(code="print(6 * 7)", mode="query")
        restart_events, connected = [], asyncio.Event()
        # The restart answers once it has happened: follow its events from before it.
        following = asyncio.ensure_future(follow(kernel, restart_events, "kernel_started", connected))
        await asyncio.wait_for(connected.wait(), 30)
        await kernel.restart()
        await asyncio.wait_for(following, 60)
        out["info_after_restart"] = await kernel.get_info()
        out["destroy"] = await kernel.destroy()
        out["events"], out["restart_events"] = events, restart_events
        try:
            await kernel.get_info()
            out["after_destroy"] = "still visible"
        except Exception as exc:  # noqa: BLE001 - the client raises BackendAPIError, recorded as it is
            out["after_destroy"] = {"type": type(exc).__name__, "args": [str(a) for a in exc.args]}
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2], "--execute" in sys.argv[3:]))
