"""``lfdm serve --checkpoint CKPT`` / ``python -m serve``: the app on an embedded local Ray, on 127.0.0.1."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lfdm serve", description="Serve the LFDM sampler over HTTP")
    p.add_argument("--checkpoint", required=True, help="full model checkpoint (local path or s3://)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--replicas", type=int, default=1, help="generator replicas (autoscaling: see serve_config.yaml)")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--address", help="Ray address (default: an embedded local Ray)")
    args = p.parse_args(argv)
    import ray
    from ray import serve
    from serve.app import Generator, Ingress
    from lfdm.checkpoint import read_info
    read_info(args.checkpoint)                            # fail fast, before Ray starts
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False)
    serve.start(http_options={"host": args.host, "port": args.port})
    generator = Generator.options(num_replicas=args.replicas, ray_actor_options={"num_cpus": 1}).bind(
        args.checkpoint, args.max_batch_size)
    serve.run(Ingress.options(ray_actor_options={"num_cpus": 0.5}).bind(generator), name="lfdm", route_prefix="/")
    print(f"LFDM sampler on http://{args.host}:{args.port}  (API docs: /docs, schema: /openapi.json)", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
