"""Start and stop the local control plane as background processes.

``up`` is idempotent: a running test bed is reused. Each component runs in its
own session with a pid file and a log under the state directory, so ``down``
(or another shell) can stop them, and a test run can leave the test bed up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import components, node, pki, realnode
from .polling import free_port, say, wait_for
from .settings import REPO_ROOT, TestbedSettings, bin_dir
from .stages import render_kwok_config

CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "imagesim"]


class Testbed:
    def __init__(self, settings: TestbedSettings) -> None:
        self.settings = settings
        self.layout = components.Layout(state=settings.state_dir, bin=bin_dir(settings.cache_dir))
        self.components = CONTROL_PLANE + (realnode.COMPONENTS if settings.real_node else [])

    # -- state -------------------------------------------------------------
    def _pidfile(self, name: str) -> Path:
        return self.layout.state / "run" / f"{name}.pid"

    def log_path(self, name: str) -> Path:
        return self.layout.state / "logs" / f"{name}.log"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            # When this process started it (a test run), reap it: a zombie still answers kill(0).
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
            return pid
        except ProcessLookupError:
            return None

    def running(self) -> bool:
        return all(self._pid(n) for n in self.components) and self.layout.kubeconfig.exists()

    def _ports(self) -> components.Ports:
        return components.Ports(**json.loads((self.layout.state / "ports.json").read_text()))

    # -- processes ---------------------------------------------------------
    def start_process(self, name: str, argv: list[str]) -> None:
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        self._pidfile(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as logfile:
            proc = subprocess.Popen(
                argv,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pidfile(name).write_text(str(proc.pid))

    def check_alive(self, name: str) -> bool:
        if self._pid(name) is None:
            tail = (
                self.log_path(name).read_text(errors="replace")[-2000:]
                if self.log_path(name).exists()
                else ""
            )
            raise RuntimeError(f"{name} exited; the end of {self.log_path(name)}:\n{tail}")
        return True

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.layout.pki("ca.crt")))
        ctx.load_cert_chain(str(self.layout.pki("admin.crt")), str(self.layout.pki("admin.key")))
        return ctx

    def _get(self, path: str) -> bytes:
        ports = self._ports()
        url = f"https://{ports.apiserver_host}:{ports.apiserver}{path}"
        with urllib.request.urlopen(url, context=self._ssl(), timeout=2) as resp:
            return resp.read()

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(
            [str(self.layout.bin / "kubectl"), f"--kubeconfig={self.layout.kubeconfig}", *args],
            check=True,
            capture_output=True,
            text=True,
            input=input,
        ).stdout

    # -- lifecycle ---------------------------------------------------------
    def build(self) -> None:
        if not (self.layout.bin / "kubernel-k8s").exists() or not (self.layout.bin / "helm").exists():
            say("building the control-plane binaries (cached after the first time)")
        subprocess.run(
            ["bash", str(REPO_ROOT / "cluster" / "build.sh")],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "KUBERNEL_CACHE": str(self.settings.cache_dir)},
        )

    def up(self) -> None:
        if self.running():
            say(f"already running; kubeconfig: {self.layout.kubeconfig}")
            return
        self.build()
        self.down(quiet=True)
        started = time.monotonic()
        state = self.layout.state
        shutil.rmtree(state, ignore_errors=True)
        (state / "pki").mkdir(parents=True)
        real = self.settings.real_node
        steps = 6 if real else 5
        oci = realnode.prepare(self, self.settings.cache_dir, say) if real else None
        say(f"starting the control plane in {state}")

        keys = pki.generate(extra_ips=(node.NODE_IP, node.KUBERNETES_SERVICE_IP) if real else ())
        for name, data in {
            "ca.crt": keys.ca_cert,
            "serving.crt": keys.serving_cert,
            "serving.key": keys.serving_key,
            "admin.crt": keys.admin_cert,
            "admin.key": keys.admin_key,
            "sa.key": keys.service_account_key,
            "sa.pub": keys.service_account_pub,
        }.items():
            self.layout.pki(name).write_bytes(data)
        ports = components.Ports(
            etcd_client=free_port(),
            etcd_peer=free_port(),
            apiserver=free_port(),
            kwok=free_port(),
            apiserver_host=node.NODE_IP if real else "127.0.0.1",
        )
        (state / "ports.json").write_text(json.dumps(ports.__dict__))
        self.layout.kubeconfig.write_text(
            components.kubeconfig(
                keys.ca_cert, keys.admin_cert, keys.admin_key, ports.apiserver, ports.apiserver_host
            )
        )
        self.layout.kubeconfig.chmod(0o600)
        self.layout.scheduler_config.write_text(components.scheduler_config(self.layout))
        self.layout.kwok_config.write_text(render_kwok_config(self.settings.delays))

        say(f"1/{steps} etcd")
        self.start_process("etcd", components.etcd(self.layout, ports))
        say(f"2/{steps} kube-apiserver")
        self.start_process("kube-apiserver", components.kube_apiserver(self.layout, ports))
        wait_for(
            "kube-apiserver /readyz",
            lambda: (
                self.check_alive("etcd")
                and self.check_alive("kube-apiserver")
                and self._get("/readyz") == b"ok"
            ),
            timeout=60,
        )
        say(f"3/{steps} kube-controller-manager and kube-scheduler")
        self.start_process("kube-controller-manager", components.kube_controller_manager(self.layout))
        self.start_process("kube-scheduler", components.kube_scheduler(self.layout))
        say(
            f"4/{steps} KWOK with {self.settings.nodes.count} simulated nodes (tainted {node.SIMULATED_NODE_LABEL})"
        )
        self.start_process("kwok", components.kwok(self.layout, ports))
        self.start_process(
            "imagesim", [sys.executable, "-m", "kubernel_testbed", "imagesim", str(self.layout.kubeconfig)]
        )
        shape = self.settings.nodes
        nodes = [
            components.node_manifest(i, shape.cpu, shape.memory, shape.gpus, shape.pods)
            for i in range(shape.count)
        ]
        self.kubectl(
            "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
        )
        if oci is not None:
            say(f"5/{steps} the real node {node.NODE_NAME} ({node.NODE_IP})")
            realnode.start(self, oci, self.settings.cache_dir / "registry", say)
        say(f"{steps}/{steps} waiting for the simulated nodes to be Ready and the default ServiceAccount")
        wait_for("simulated nodes Ready", self._nodes_ready, timeout=60, interval=0.2)
        wait_for(
            "ServiceAccount default/default",
            lambda: (
                all(self.check_alive(n) for n in self.components)
                and bool(self._get("/api/v1/namespaces/default/serviceaccounts/default"))
            ),
            timeout=60,
            interval=0.2,
        )
        say(f"ready in {time.monotonic() - started:.1f}s; kubeconfig: {self.layout.kubeconfig}")

    def _nodes_ready(self) -> bool:
        for name in self.components:
            self.check_alive(name)
        nodes = json.loads(self._get(f"/api/v1/nodes?labelSelector={components.NODE_LABEL}%3Dtrue"))["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.settings.nodes.count

    def down(self, quiet: bool = False) -> None:
        stopped = [n for n in self.components if self._pid(n) is not None]
        if (self.layout.state / "node").exists():
            realnode.stop(self)  # also after a crash: containers, mounts, interfaces, rules
        for name in reversed(CONTROL_PLANE):
            self.stop_process(name)
        if stopped and not quiet:
            say(f"stopped {', '.join(stopped)}")

    def stop_process(self, name: str) -> None:
        """SIGTERM to the component's process group; SIGKILL after 10 s."""
        pid = self._pid(name)
        if pid is None:
            self._pidfile(name).unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._pid(name):
            time.sleep(0.05)
        if self._pid(name):
            os.killpg(pid, signal.SIGKILL)
            wait_for(f"{name} gone", lambda: self._pid(name) is None, timeout=10, interval=0.05)
        self._pidfile(name).unlink(missing_ok=True)

    # -- fault injection (tests) -------------------------------------------
    def stop_apiserver(self) -> None:
        """kill -9 kube-apiserver; etcd and everything else keep running."""
        self.kill_process("kube-apiserver")

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on its port and wait until it is ready."""
        self.start_process("kube-apiserver", components.kube_apiserver(self.layout, self._ports()))

        def ready() -> bool:
            self.check_alive("kube-apiserver")
            try:
                return self._get("/readyz") == b"ok"
            except OSError:
                return False

        wait_for("kube-apiserver /readyz", ready, timeout=60)
        # kube-scheduler does not always resume scheduling after the API server comes
        # back (seen here: no Pod bound for minutes, until it restarted). Restart it,
        # so that what a fault test measures is our services' recovery, not its.
        self.kill_process("kube-scheduler")
        self.start_process("kube-scheduler", components.kube_scheduler(self.layout))

    def kill_process(self, name: str) -> None:
        pid = self._pid(name)
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            wait_for(f"{name} gone", lambda: self._pid(name) is None, timeout=10, interval=0.05)
        self._pidfile(name).unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        """KUBECONFIG (a reachable configured cluster wins) and the pinned tools on PATH."""
        kubeconfig = os.environ["KUBECONFIG"] if external_cluster_reachable() else str(self.layout.kubeconfig)
        return {"KUBECONFIG": kubeconfig, "PATH": f"{self.layout.bin}:{os.environ.get('PATH', '')}"}


def external_cluster_reachable() -> bool:
    """True when KUBECONFIG names a cluster that answers: then nothing local starts."""
    path = os.environ.get("KUBECONFIG")
    if not path or not Path(path).exists():
        return False
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return False
    result = subprocess.run(
        [kubectl, "--request-timeout=5s", "get", "--raw=/readyz"], capture_output=True, text=True
    )
    return result.returncode == 0
