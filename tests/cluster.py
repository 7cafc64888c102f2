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
from typing import Dict, List, Optional, Set

from tests.ray_fixtures import RAY_TEST_ENV, kill_ray_cluster

BIN = os.path.dirname(sys.executable)
PORT_RANGE = (20000, 31000)          # below Linux's ephemeral range (32768-60999)
START = [sys.executable, "-c", "import sys, ray._private.services as services; "
         "services.resolve_ip_for_localhost = lambda host: host; "     # keep 127.0.0.1 as given
         "from ray.scripts.scripts import main; sys.argv = ['ray'] + sys.argv[1:]; main()", "start"]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, taken: Set[int] = frozenset()) -> List[int]:
    """``count`` ports from PORT_RANGE that nothing listens on now and that are not in ``taken`` (ports already
    handed to a node that may not have bound them yet)."""
    chosen: List[int] = []
    while len(chosen) < count:
        port = random.randrange(*PORT_RANGE)
        if port not in chosen and port not in taken and _bindable(port):
            chosen.append(port)
    return chosen


def free_port_block(size: int, taken: Set[int] = frozenset()) -> int:
    """The first port of ``size`` free consecutive ports (a worker-port range) outside ``taken``."""
    while True:
        first = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - size)
        if all(port not in taken and _bindable(port) for port in range(first, first + size)):
            return first


class LocalCluster:
    def __init__(self, temp_dir: str, head_cpus: float = 4, extra_env: Optional[Dict[str, str]] = None):
        self.temp_dir = temp_dir
        self.env = {**os.environ, **RAY_TEST_ENV, "RAY_TMPDIR": temp_dir, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                    "PATH": BIN + os.pathsep + os.environ["PATH"], **(extra_env or {})}
        self.taken: Set[int] = set()          # every port handed out, so no two components ever share one
        self.gcs_port = free_ports(1)[0]
        self.taken.add(self.gcs_port)
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.head = self._start(["--head", f"--port={self.gcs_port}", "--include-dashboard=false",
                                 f"--temp-dir={temp_dir}"], head_cpus, {"head": 1}, "head")
        self.workers: Dict[str, subprocess.Popen] = {}
        self._wait_for_node("head", self.head, timeout=120)

    def _log(self, name: str) -> str:
        return os.path.join(self.temp_dir, f"node-{name}.log")

    def _start(self, role_args: List[str], cpus: float, resources: Dict[str, float], name: str) -> subprocess.Popen:
        workers = free_port_block(40, self.taken)
        self.taken.update(range(workers, workers + 40))
        ports = free_ports(7, self.taken)
        self.taken.update(ports)
        node, objects, client, agent, agent_grpc, runtime_env, metrics = ports
        args = [*START, "--block", *role_args, "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}", f"--resources={json.dumps(resources)}",
                f"--node-manager-port={node}", f"--object-manager-port={objects}",
                f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
                f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
                f"--metrics-export-port={metrics}", f"--min-worker-port={workers}",
                f"--max-worker-port={workers + 39}", "--object-store-memory=150000000", "--disable-usage-stats"]
        node_env = {k: v for k, v in self.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}   # several nodes
        with open(self._log(name), "ab") as log:
            return subprocess.Popen(args, env=node_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def add_worker(self, name: str, cpus: float = 1, attempts: int = 3) -> None:
        """Start a worker node with resource ``name`` and wait until the GCS has it alive. A node that has not
        joined within a minute (seldom, on a loaded machine) is killed and started again on fresh ports; after
        ``attempts`` the error carries its output."""
        for attempt in range(attempts):
            proc = self._start([f"--address={self.address}"], cpus, {name: 1, "worker_node": 1}, name)
            try:
                self._wait_for_node(name, proc, timeout=60)
            except TimeoutError:
                self._kill_tree(proc)
                if attempt == attempts - 1:
                    raise
                continue
            self.workers[name] = proc
            return

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

    def alive_resources(self) -> List[str]:
        """The custom resource names of the nodes the GCS has alive (``head``, worker names); raises with Ray's
        output when the cluster cannot be asked."""
        code = ("import ray, json; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([k for n in ray.nodes() if n['Alive'] for k in n['Resources']]))" % self.address)
        try:
            out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                                 timeout=60)
        except subprocess.TimeoutExpired:
            raise ConnectionError(f"cannot list the nodes of {self.address}: no answer within 60 s") from None
        if out.returncode != 0 or not out.stdout.strip():
            raise ConnectionError(f"cannot list the nodes of {self.address}: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _wait_for_node(self, name: str, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.time() + timeout
        problem = ""
        while time.time() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError(f"the Ray head exited: {self._tail('head')}")
            if proc.poll() is not None:
                problem = f"node {name} exited with {proc.returncode}"
                break
            try:
                if name in self.alive_resources():
                    return
            except ConnectionError as exc:
                problem = str(exc)
            time.sleep(1)
        raise TimeoutError(f"node {name} did not join {self.address} within {timeout:g} s ({problem}); "
                           f"its output: {self._tail(name)}")

    def _tail(self, name: str) -> str:
        try:
            with open(self._log(name), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(none)"

    def stop(self) -> None:
        for name in list(self.workers):
            self.kill_worker(name)
        try:
            os.killpg(self.head.pid, signal.SIGTERM)
            self.head.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        kill_ray_cluster(self.temp_dir)
