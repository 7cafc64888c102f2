"""``lfdm serve --checkpoint CKPT`` / ``python -m serve``: the app (serve.app.build_app) on 127.0.0.1.

Secure by default: the HTTP port and, when Ray is embedded, every Ray port listen on 127.0.0.1 only, and
requests need the bearer token in $LFDM_SERVE_TOKEN; without one, a random token is made and printed once.
``--no-auth`` and ``--host 0.0.0.0`` are the operator's explicit choices (put a gateway in front).
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time

KEEP_ALIVE_S = 5            # idle keep-alive connections are closed after this long
REQUEST_TIMEOUT_S = 900     # a request (headers received) that takes longer answers 408


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lfdm serve", description="Serve the LFDM sampler over HTTP")
    p.add_argument("--checkpoint", required=True, help="full model checkpoint (local path or s3://)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--replicas", type=int, default=1, help="generator replicas (autoscaling: see serve_config.yaml)")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--address", help="Ray address (default: an embedded local Ray on 127.0.0.1)")
    p.add_argument("--no-auth", action="store_true", help="serve without a bearer token (behind your own gateway)")
    args = p.parse_args(argv)
    from serve.app import TOKEN_ENV, build_app
    if not args.no_auth and not os.environ.get(TOKEN_ENV):
        os.environ[TOKEN_ENV] = secrets.token_urlsafe(24)
        print(f"{TOKEN_ENV} was not set; this server's bearer token is: {os.environ[TOKEN_ENV]}", flush=True)
    application = build_app({"checkpoint": args.checkpoint, "max_batch_size": args.max_batch_size,
                             "auth": not args.no_auth,
                             "generator_options": {"num_replicas": args.replicas, "ray_actor_options": {"num_cpus": 1}},
                             "ingress_options": {"ray_actor_options": {"num_cpus": 0.5}}})   # fails fast, before Ray
    import ray
    from ray import serve
    if args.address:
        ray.init(address=args.address)
    else:
        from lfdm.embedded_ray import prepare_embedded_ray
        from serve.loopback import bind_replica_servers_to_loopback
        ray.init(runtime_env={"worker_process_setup_hook": bind_replica_servers_to_loopback},
                 **prepare_embedded_ray())
    serve.start(http_options={"host": args.host, "port": args.port, "keep_alive_timeout_s": KEEP_ALIVE_S,
                              "request_timeout_s": REQUEST_TIMEOUT_S})
    serve.run(application, name="lfdm", route_prefix="/")
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
