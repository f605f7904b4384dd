"""python -m kubernel_testbed up|down|status|env|run|imagesim KUBECONFIG"""

from __future__ import annotations

import argparse
import sys

from .launcher import Testbed, external_cluster_reachable, say
from .settings import TestbedSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubernel_testbed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the local control plane (reused when running)")
    sub.add_parser("down", help="stop it")
    sub.add_parser("status", help="exit 0 when it runs")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and PATH")
    sub.add_parser("run", help="CRDs, bootstrap keypair, operator and API in the foreground (make run)")
    sim = sub.add_parser("imagesim", help="(internal) the simulated image store")
    sim.add_argument("kubeconfig")
    args = parser.parse_args(argv)

    if args.command == "imagesim":
        from .imagesim import main as imagesim_main

        imagesim_main(args.kubeconfig)
        return 0
    if args.command == "run":
        from .devrun import main as run_main

        return run_main()
    testbed = Testbed(TestbedSettings.from_env())
    if args.command == "up":
        if external_cluster_reachable():
            say("KUBECONFIG points at a reachable cluster; using it, starting nothing")
            return 0
        testbed.up()
        print(f"export KUBECONFIG={testbed.layout.kubeconfig}")
    elif args.command == "down":
        testbed.down()
    elif args.command == "status":
        running = testbed.running()
        print("running" if running else "stopped")
        return 0 if running else 1
    elif args.command == "env":
        for key, value in testbed.env().items():
            print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
