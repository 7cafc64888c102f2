"""Settings of an embedded local Ray instance (what `make demo`, the jobs without an address and `lfdm serve`
start). The library never imports Ray: the layers above it (ray_jobs, serve) apply these settings.

- Every Ray server of the instance listens on 127.0.0.1 only: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray
  use the loopback address as the node address (Ray's single-machine mode; Ray binds its GCS, raylet, worker,
  agent and metrics ports to the node address), and the dashboard is off. Nothing of it is reachable from
  another machine; a multi-node cluster is started by the operator with `ray start`, not embedded.
- Ray's token authentication stays as Ray sets it (on by default since 2.60); the tests turn it off, which the
  loopback binding makes harmless.
- More logical CPUs than cores (at least 4): on a 2-core machine an actor pool or Train workers that take every
  CPU starve the tasks feeding them and deadlock silently; a Ray Data hang becomes an error after 10 minutes.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, Tuple

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",       # on, every worker print() shows twice
    "RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S": "600",
}


def embedded_ray_settings() -> Tuple[Dict[str, str], dict]:
    """(environment, ray.init keyword arguments). The loopback variable is forced; the others are defaults a
    user's environment may change."""
    env = {**{k: os.environ.get(k, v) for k, v in QUIET_ENV.items()}, **LOOPBACK_ENV}
    kwargs = {"num_cpus": max(4, os.cpu_count() or 1), "include_dashboard": False,
              "object_store_memory": 512 * 2**20, "log_to_driver": True}
    return env, kwargs


def prepare_embedded_ray() -> dict:
    """Set the environment of an embedded instance in this process (its Ray processes inherit it) and return the
    ray.init keyword arguments. Ray reads the loopback variable once, when it is imported: if this process has
    imported Ray already, its module constant is set as well."""
    env, kwargs = embedded_ray_settings()
    os.environ.update(env)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
    return kwargs
