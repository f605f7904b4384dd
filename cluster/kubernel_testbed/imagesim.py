"""The test bed's image store: tells the KWOK stages whether a Pod pulls.

Runs as its own process beside KWOK. It watches Pods bound to simulated nodes,
annotates each once with the pull decision (see ``images.pull_decision``) and
records pulled images in ``node.status.images``, where a real kubelet reports
them, so the state survives a restart of this process.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp
from kubernetes_asyncio import client, config, watch

from .components import NODE_LABEL
from .images import IMAGE_ANNOTATION, pull_decision

log = logging.getLogger("kubernel.imagesim")


class ImageStore:
    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core
        self.nodes: dict[str, set[str]] = {}
        self.decided: set[str] = set()  # Pod UIDs whose annotation is on its way
        self.tasks: set[asyncio.Task] = set()

    async def load_nodes(self) -> None:
        nodes = await self.core.list_node(label_selector=f"{NODE_LABEL}=true")
        for node in nodes.items:
            known: set[str] = set()
            for image in node.status.images or []:
                known.update(image.names or [])
            self.nodes[node.metadata.name] = known

    async def handle(self, pod: client.V1Pod) -> None:
        node = pod.spec.node_name
        annotations = pod.metadata.annotations or {}
        if not node or IMAGE_ANNOTATION in annotations or pod.metadata.deletion_timestamp:
            return
        if pod.metadata.uid in self.decided:
            return
        if node not in self.nodes:
            await self.load_nodes()
            if node not in self.nodes:
                return  # not one of ours
        images = [c.image for c in pod.spec.containers]
        decision = pull_decision(images, self.nodes[node])
        self.decided.add(pod.metadata.uid)
        if decision == "absent":
            # The pull will succeed: the node has the image from now on.
            self.nodes[node].update(images)
            self._spawn(self._record_node_images(node))
        self._spawn(self._annotate(pod, decision))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception():
            log.error("patch failed: %s", task.exception())

    async def _record_node_images(self, node: str) -> None:
        images = [{"names": [i], "sizeBytes": 1} for i in sorted(self.nodes[node])]
        await self.core.patch_node_status(node, {"status": {"images": images}})

    async def _annotate(self, pod: client.V1Pod, decision: str) -> None:
        try:
            await self.core.patch_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                {"metadata": {"annotations": {IMAGE_ANNOTATION: decision}}},
            )
        except client.ApiException as exc:
            if exc.status != 404:
                self.decided.discard(pod.metadata.uid)  # decided again at the next listing
                raise
        except (TimeoutError, OSError, aiohttp.ClientError):
            self.decided.discard(pod.metadata.uid)
            raise


async def run(kubeconfig: str) -> None:
    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        store = ImageStore(client.CoreV1Api(api))
        await store.load_nodes()
        while True:
            # Anything can break while kube-apiserver restarts (the fault suite stops
            # it): refused connections, cut streams, 429/503. List again and go on.
            try:
                pods = await store.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=")
                for pod in pods.items:
                    await store.handle(pod)
                stream = watch.Watch()
                async for event in stream.stream(
                    store.core.list_pod_for_all_namespaces,
                    field_selector="spec.nodeName!=",
                    resource_version=pods.metadata.resource_version,
                    timeout_seconds=300,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        await store.handle(event["object"])
            except client.ApiException as exc:
                if exc.status != 410:
                    log.warning("API error %s; listing again", exc.status)
                    await asyncio.sleep(1)
            except (TimeoutError, OSError, aiohttp.ClientError) as exc:
                log.warning("watch interrupted (%s); listing again", exc)
                await asyncio.sleep(1)


def main(kubeconfig: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(run(kubeconfig))
