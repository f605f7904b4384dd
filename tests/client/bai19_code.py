"""Runs under the Backend.AI 19.09 client's own virtualenv: the code calls as the
published client makes them (ai/backend/client/kernel.py).

Usage: python bai19_code.py <token> <image> <workdir>; reads BACKEND_* from the environment.
Prints one JSON object with what the client saw; the pytest side asserts on it.
"""

import asyncio
import json
import os
import sys

import aiohttp
from ai.backend.client.session import AsyncSession


async def run_loop(kernel, code, mode="query", opts=None, inputs=()):
    """Kernel.execute until finished (the CLI's exec_loop_sync); every result."""
    results, run_id, inputs = [], None, list(inputs)
    while True:
        result = await kernel.execute(run_id, code, mode=mode, opts=opts)
        results.append(result)
        run_id, opts = result["runId"], {}
        if result["status"] == "finished":
            return results
        if result["status"] == "waiting-input":
            mode, code = "input", inputs.pop(0)
        else:
            mode, code = "continue", ""


async def stream_loop(kernel, code):
    results = []
    async with kernel.stream_execute(code, mode="query") as stream:
        async for message in stream:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            result = json.loads(message.data)
            results.append(result)
            if result["status"] == "waiting-input":
                await stream.send_str("7")
            if result["status"] == "finished":
                break
    return results


async def main(token, image, workdir):
    out = {}
    async with AsyncSession() as session:
        kernel = await session.Kernel.get_or_create(
            image, client_token=token, resources={"cpu": "0.5", "mem": "256m"}
        )
        out["status"] = kernel.status
        out["query"] = await run_loop(kernel, "x = 6 * 7\nprint(x)")
        out["state"] = await run_loop(kernel, "print(x + 1)")
        out["continued"] = await run_loop(
            kernel, "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(2)"
        )
        out["input"] = await run_loop(kernel, "print(input('name? ').upper())", inputs=["alice"])
        out["stream"] = await stream_loop(kernel, "print(int(input()) * 6)")
        out["complete"] = await kernel.complete("import o", {"row": 0, "col": 8, "line": "import o"})
        out["logs"] = await kernel.get_logs()
        os.chdir(workdir)
        await kernel.upload(["main.py", "data/input.txt"])
        out["files"] = await kernel.list_files(".")
        out["batch"] = await run_loop(
            kernel, "", mode="batch", opts={"build": "cp main.py built.py", "exec": "python3 built.py"}
        )
        os.makedirs("down", exist_ok=True)
        out["download"] = await kernel.download(["data/input.txt"], dest="down")
        out["downloaded"] = (
            open(os.path.join("down", "data", "input.txt")).read()
            if os.path.exists(os.path.join("down", "data", "input.txt"))
            else open(os.path.join("down", "input.txt")).read()
        )

        async def spin():
            return await run_loop(kernel, "while True: pass")

        # Interrupt until the spinning run reports its end (an interrupt sent before the
        # run started is a no-op, so it is repeated).
        spinning = asyncio.ensure_future(spin())
        for _ in range(20):
            info = await kernel.get_info()
            if spinning.done():
                break
            await kernel.interrupt()
            try:
                out["interrupted"] = await asyncio.wait_for(asyncio.shield(spinning), 5)
                break
            except TimeoutError:
                continue
        out["info"] = info
        out["destroy"] = await kernel.destroy()
    print(json.dumps(out))


asyncio.run(main(*sys.argv[1:4]))
