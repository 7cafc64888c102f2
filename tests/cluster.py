"""A real Ray cluster on 127.0.0.1 for tests: a head node and any number of worker nodes, each a `ray start
--block` process in its own session, with its own explicit ports outside the ephemeral range (so two clusters,
or this one and the session's embedded Ray, never collide), all on loopback. Stopping it stops only what it
started (every process of its temp dir); `ray stop` would stop every Ray instance on the host.

Loopback for several nodes on one machine: `ray start` turns 127.0.0.1 (as node address and as the head's address)
into the machine's routable address, and Ray binds its servers to all interfaces unless the node address is the
loopback one. The nodes are therefore started through ``START`` below, which runs Ray's own CLI with that one
rewrite disabled, so every node keeps 127.0.0.1 and every server binds to it; drivers and tools connect with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (``self.env``), which keeps their address on loopback as well.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

from tests.ray_fixtures import RAY_TEST_ENV, kill_ray_cluster

BIN = os.path.dirname(sys.executable)
PORT_RANGE = (20000, 31000)          # below Linux's ephemeral range (32768-60999)
START = [sys.executable, "-c", "import sys, ray._private.services as services; "
         "services.resolve_ip_for_localhost = lambda host: host; "     # keep 127.0.0.1 as given
         "from ray.scripts.scripts import main; sys.argv = ['ray'] + sys.argv[1:]; main()", "start"]


def free_ports(count: int) -> List[int]:
    """``count`` consecutive-free ports from PORT_RANGE that nothing listens on now."""
    chosen: List[int] = []
    while len(chosen) < count:
        port = random.randrange(*PORT_RANGE)
        if port in chosen:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def free_port_block(size: int) -> int:
    """The first port of ``size`` free consecutive ports (a worker-port range)."""
    while True:
        first = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - size)
        ok = True
        for port in range(first, first + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return first


class LocalCluster:
    def __init__(self, temp_dir: str, head_cpus: float = 4, extra_env: Optional[Dict[str, str]] = None):
        self.temp_dir = temp_dir
        self.env = {**os.environ, **RAY_TEST_ENV, "RAY_TMPDIR": temp_dir, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                    "PATH": BIN + os.pathsep + os.environ["PATH"], **(extra_env or {})}
        self.gcs_port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.head = self._start(["--head", f"--port={self.gcs_port}", "--include-dashboard=false",
                                 f"--temp-dir={temp_dir}"], head_cpus, {"head": 1})
        self.workers: Dict[str, subprocess.Popen] = {}
        self._wait_for_nodes(1)

    def _start(self, role_args: List[str], cpus: float, resources: Dict[str, float]) -> subprocess.Popen:
        node, objects, client, agent, agent_grpc, runtime_env, metrics = free_ports(7)
        workers = free_port_block(40)
        args = [*START, "--block", *role_args, "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}", f"--resources={json.dumps(resources)}",
                f"--node-manager-port={node}", f"--object-manager-port={objects}",
                f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
                f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
                f"--metrics-export-port={metrics}", f"--min-worker-port={workers}",
                f"--max-worker-port={workers + 39}", "--object-store-memory=150000000", "--disable-usage-stats"]
        node_env = {k: v for k, v in self.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}   # several nodes
        return subprocess.Popen(args, env=node_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def add_worker(self, name: str, cpus: float = 1) -> None:
        self.workers[name] = self._start([f"--address={self.address}"], cpus, {name: 1, "worker_node": 1})
        self._wait_for_nodes(1 + len(self.workers))

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker node: its raylet, its workers and everything else in its process group."""
        proc = self.workers.pop(name)
        self._kill_tree(proc)

    def _kill_tree(self, proc: subprocess.Popen) -> None:
        import psutil
        try:
            root = psutil.Process(proc.pid)
            victims = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            victims = []
        for p in victims:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def alive_nodes(self) -> int:
        code = ("import ray, json; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps(sum(1 for n in ray.nodes() if n['Alive'])))" % self.address)
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def _wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError("the Ray head exited")
            if self.alive_nodes() >= count:
                return
            time.sleep(1)
        raise TimeoutError(f"the cluster did not reach {count} alive nodes")

    def stop(self) -> None:
        for name in list(self.workers):
            self.kill_worker(name)
        try:
            os.killpg(self.head.pid, signal.SIGTERM)
            self.head.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        kill_ray_cluster(self.temp_dir)
