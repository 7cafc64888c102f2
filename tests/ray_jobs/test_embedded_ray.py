"""The embedded Ray of the jobs and `make demo` (ray_jobs.common.init_ray) listens on 127.0.0.1 only, with Ray's
token authentication on (its token kept out of $HOME for the test), and its workers get the thread count Ray
gives them."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.ray_fixtures import RAY_TEST_ENV, kill_ray_cluster
from tests.serve.test_start_paths import is_loopback

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = """
import json, sys, psutil, ray
from ray_jobs.common import init_ray
init_ray(None)                                     # Ray is imported before init_ray, as in every job
import ray.data
ray.data.range(8).map_batches(lambda b: b, batch_size=4).take_all()     # Data workers running

@ray.remote(num_cpus=1)
def torch_threads():
    import torch
    return torch.get_num_threads()
threads = ray.get(torch_threads.remote())
me = psutil.Process()
tmp = sys.argv[1]
procs = {me.pid: me}
for p in psutil.process_iter(["cmdline"]):
    try:
        if tmp in " ".join(p.info["cmdline"] or []) or p.environ().get("RAY_TMPDIR") == tmp:
            procs[p.pid] = p
    except Exception:
        pass
out = []
for p in procs.values():
    try:
        out += [[c.laddr.ip, c.laddr.port, p.name()] for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
    except Exception:
        pass
print(json.dumps({"sockets": out, "torch_threads": threads}))
"""


def test_jobs_embedded_ray_listens_on_loopback_only(ray_tmpdir):
    tmp = ray_tmpdir()
    env = {**os.environ, **RAY_TEST_ENV, "RAY_TMPDIR": tmp, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_AUTH_MODE")
    try:
        result = subprocess.run([sys.executable, "-c", "import ray\n" + PROBE, tmp], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        probe = json.loads(result.stdout.strip().splitlines()[-1])
        sockets = probe["sockets"]
        assert len(sockets) >= 4, sockets
        # a 1-CPU task gets one torch thread: nothing (a worker setup hook above all) imported torch before Ray
        # set the worker's thread count (2 threads per worker on 2 cores made training 6-15x slower)
        assert probe["torch_threads"] == 1
        assert all(is_loopback(ip) for ip, _, _ in sockets), [s for s in sockets if not is_loopback(s[0])]
    finally:
        kill_ray_cluster(tmp)
