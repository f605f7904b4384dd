"""The 19.09 client's own flows, written as its users write them (runs in .venv-bai19).

Usage: python bai19_flows.py <prefix> <image>; BACKEND_ENDPOINT, and the keypairs as
USER_/OTHER_/ADMIN_ACCESS_KEY and _SECRET_KEY, from the environment. Prints one
JSON object with what the client saw; tests/integration/test_backendai_client.py
asserts on it.
"""

import asyncio
import json
import os
import sys

from ai.backend.client.config import APIConfig
from ai.backend.client.exceptions import BackendAPIError
from ai.backend.client.session import AsyncSession


def config(who):
    return APIConfig(
        endpoint=os.environ["BACKEND_ENDPOINT"],
        access_key=os.environ[f"{who}_ACCESS_KEY"],
        secret_key=os.environ[f"{who}_SECRET_KEY"],
    )


async def follow(kernel, seen, until, connected):
    """Collect the session's events until ``until`` (the stream is open once ``connected`` is set)."""
    async with kernel.stream_events() as response:
        connected.set()
        async for event in response.fetch_events():
            seen.append({"event": event["event"], "data": json.loads(event["data"])})
            if event["event"] in until:
                return


async def following(kernel, until):
    """Start following ``kernel``'s events; returns (task, list) once the stream is open."""
    seen, connected = [], asyncio.Event()
    task = asyncio.ensure_future(follow(kernel, seen, until, connected))
    await asyncio.wait_for(connected.wait(), 30)
    return task, seen


def error_of(exc):
    return {
        "status": exc.status,
        "type": exc.data.get("type", "").rsplit("/", 1)[-1],
        "title": exc.data.get("title"),
        "msg": exc.data.get("msg"),
    }


async def main(prefix, image):
    out = {}
    async with (
        AsyncSession(config=config("USER")) as user,
        AsyncSession(config=config("ADMIN")) as admin,
        AsyncSession(config=config("OTHER")) as other,
    ):
        user_key, other_key = os.environ["USER_ACCESS_KEY"], os.environ["OTHER_ACCESS_KEY"]

        # 1. Stream first, then create: the race-free way to see a session's whole life.
        token = f"{prefix}-first"
        task, seen = await following(user.Kernel(token), ("kernel_started", "kernel_terminated"))
        kernel = await user.Kernel.get_or_create(image, client_token=token, enqueue_only=True)
        await asyncio.wait_for(task, 60)
        out["stream_then_create"] = [e["event"] for e in seen]
        # A restart answers once it has happened; a stream opened before sees it.
        task, seen = await following(kernel, ("kernel_started",))
        await kernel.restart()
        out["restart_status"] = (await kernel.get_info())["status"]
        await asyncio.wait_for(task, 60)
        out["restart_events"] = [(e["event"], e["data"]["reason"]) for e in seen]
        # Destroying: terminating, then terminated, and stats the CLI can print.
        task, seen = await following(kernel, ("kernel_terminated",))
        out["destroy"] = await kernel.destroy()
        await asyncio.wait_for(task, 30)
        out["destroy_events"] = [(e["event"], e["data"]["reason"]) for e in seen]

        # 2. enqueueOnly, then the stream (whatever came before it is in get_info).
        token = f"{prefix}-queued"
        kernel = await user.Kernel.get_or_create(image, client_token=token, enqueue_only=True)
        out["enqueued"] = {"created": kernel.created, "status": kernel.status}
        task, seen = await following(kernel, ("kernel_started", "kernel_terminated"))
        if (await kernel.get_info())["status"] == "RUNNING":
            task.cancel()
        else:
            await asyncio.wait_for(task, 60)
        out["queued_status"] = (await kernel.get_info())["status"]

        # 3. no_reuse, and another image, on a live token.
        for name, kwargs in (("no_reuse", {"no_reuse": True}), ("other_image", {})):
            try:
                await user.Kernel.get_or_create(
                    "registry.example/other:1" if name == "other_image" else image,
                    client_token=token,
                    **kwargs,
                )
                out[name] = "reused"
            except BackendAPIError as exc:
                out[name] = error_of(exc)
        again = await user.Kernel.get_or_create(image, client_token=token)
        out["reused"] = {"created": again.created, "status": again.status}

        # 4. owner_access_key: an admin acts for a user of its domain; a user may not.
        token = f"{prefix}-owned"
        made = await admin.Kernel.get_or_create(
            image, client_token=token, owner_access_key=user_key, enqueue_only=True
        )
        out["admin_for_user"] = (await user.Kernel(token).get_info())["ownerAccessKey"]
        out["admin_reads"] = (await admin.Kernel(token, user_key).get_info())["status"]
        try:
            await other.Kernel.get_or_create(
                image, client_token=f"{prefix}-stolen", owner_access_key=user_key
            )
            out["user_for_user"] = "allowed"
        except BackendAPIError as exc:
            out["user_for_user"] = error_of(exc)
        try:
            await other.Kernel(token, user_key).get_info()
            out["user_reads_other"] = "allowed"
        except BackendAPIError as exc:
            out["user_reads_other"] = error_of(exc)
        await admin.Kernel(token, user_key).destroy()
        del made

        # 5. tag, domain and group round trips.
        token = f"{prefix}-tagged"
        kernel = await user.Kernel.get_or_create(
            image,
            client_token=token,
            tag="nightly",
            domain_name="default",
            group_name="research",
            enqueue_only=True,
        )
        info = await kernel.get_info()
        out["tagged"] = {k: info.get(k) for k in ("tag", "domain", "group")}
        try:
            await user.Kernel.get_or_create(
                image, client_token=f"{prefix}-foreign", group_name="no-such-group"
            )
            out["foreign_group"] = "allowed"
        except BackendAPIError as exc:
            out["foreign_group"] = error_of(exc)
        await kernel.destroy()
        await user.Kernel(f"{prefix}-queued").destroy()
        del other_key
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2]))
