"""Keep an embedded `lfdm serve` instance on 127.0.0.1: a Ray worker setup hook.

Ray Serve 2.60 opens one more server in every replica, for calls between deployments, hard-coded on all
interfaces ("[::]:0" in ray/serve/_private/replica.py) and with no setting to change it. The embedded instance's
node address is 127.0.0.1 (lfdm.embedded_ray), so peers reach replicas there; this hook, run in every worker
process of that instance, makes the replica bind that server to 127.0.0.1 instead. It is applied only to the
embedded instance of `lfdm serve`, never to a cluster given with --address. tests/serve/test_start_paths.py checks
that every listening socket of the instance is on loopback, so a Ray upgrade that moves the call fails there.
"""
from __future__ import annotations


def bind_replica_servers_to_loopback() -> None:
    from ray.serve._private import replica

    original = replica.add_port_to_grpc_server
    if getattr(original, "lfdm_loopback", False):
        return

    def loopback(server, address: str):
        return original(server, address.replace("[::]", "127.0.0.1", 1))
    loopback.lfdm_loopback = True
    replica.add_port_to_grpc_server = loopback
