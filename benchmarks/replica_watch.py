"""Print the replica count of a Serve deployment over time, from Serve's controller, as JSON lines.

    python benchmarks/replica_watch.py --address 127.0.0.1:6379 --app lfdm --deployment generator --interval 0.5

Each line: {"t": seconds since start, "running": replicas RUNNING, "states": {state: count}, "status": ...}.
Runs until killed (SIGTERM/SIGINT) or for --seconds. A separate process, so that a client process (a benchmark,
a test) can watch a cluster it is not connected to.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", required=True, help="Ray address of the cluster (GCS host:port)")
    p.add_argument("--app", default="lfdm")
    p.add_argument("--deployment", default="generator")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--seconds", type=float, default=3600)
    args = p.parse_args()
    import ray
    from ray import serve
    ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    start = time.time()
    while not stop and time.time() - start < args.seconds:
        try:
            app = serve.status().applications.get(args.app)
            deployment = app.deployments.get(args.deployment) if app else None
            states = {str(getattr(k, "value", k)): int(v) for k, v in (deployment.replica_states if deployment else {}).items()}
            status = str(getattr(deployment.status, "value", deployment.status)) if deployment else "absent"
        except Exception as exc:                     # the controller is starting or restarting
            states, status = {}, f"unavailable: {type(exc).__name__}"
        print(json.dumps({"t": round(time.time() - start, 2), "running": states.get("RUNNING", 0), "states": states,
                          "status": status}), flush=True)
        time.sleep(args.interval)
    ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
