"""Every way of starting the service applies the token and listens on loopback only.

- `lfdm serve` with an embedded Ray (Ray's token authentication on): a token is made when none is set, and every
  listening socket of the server and of its Ray instance is on 127.0.0.1;
- `lfdm serve --address` against a running cluster;
- `serve run serve/serve_config.yaml` (the operator's path), with the token in the config's runtime_env.
Each against real HTTP, each server stopped (only what the test started).
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from tests.ray_fixtures import RAY_TEST_ENV, kill_ray_cluster
from tests.support import free_port, save_tiny_model

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
LABELS = ["move left", "zoom in", "stay still"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("start") / "model"), LABELS,
                           {"sample.sampler": "ddim", "sample.steps": 2})


def base_env(ray_tmpdir: str, ray_auth: bool = False) -> dict:
    env = {**os.environ, **RAY_TEST_ENV, "RAY_TMPDIR": ray_tmpdir, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    env.pop("LFDM_SERVE_TOKEN", None)
    if ray_auth:                                  # Ray's token authentication on, its token kept out of $HOME
        env.pop("RAY_AUTH_MODE", None)
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return env


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not come up")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def assert_token_enforced(url: str, token: str) -> None:
    r = httpx.get(url + "/v1/labels", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="lfdm"'
    assert r.json()["error"]["code"] == "unauthorized"
    assert httpx.get(url + "/v1/labels", timeout=30, headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = httpx.get(url + "/v1/labels", timeout=30, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["labels"] == LABELS


def listening_addresses(ray_tmpdir: str, root_pid: int):
    """(ip, port, process name) of every listening socket of ``root_pid``'s tree and of every process of the Ray
    instance whose temp dir is ``ray_tmpdir``."""
    import psutil
    procs = {}
    try:
        root = psutil.Process(root_pid)
        procs.update({p.pid: p for p in [root, *root.children(recursive=True)]})
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter(["cmdline"]):
        try:
            if ray_tmpdir in " ".join(p.info["cmdline"] or []) or p.environ().get("RAY_TMPDIR") == ray_tmpdir:
                procs[p.pid] = p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    out = []
    for p in procs.values():
        try:
            out += [(c.laddr.ip, c.laddr.port, p.name()) for c in p.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def test_lfdm_serve_embedded_makes_a_token_and_listens_on_loopback_only(checkpoint, ray_tmpdir):
    tmp, port = ray_tmpdir(), free_port()
    env = base_env(tmp, ray_auth=True)
    proc = subprocess.Popen([os.path.join(BIN, "lfdm"), "serve", "--checkpoint", checkpoint, "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        first = proc.stdout.readline()
        token = re.search(r"bearer token is: (\S+)", first).group(1)
        wait_for(url, proc)
        assert_token_enforced(url, token)
        addresses = listening_addresses(tmp, proc.pid)
        assert len(addresses) >= 5 and (port in {a[1] for a in addresses})            # Ray's and the HTTP port
        assert all(is_loopback(ip) for ip, _, _ in addresses), [a for a in addresses if not is_loopback(a[0])]
    finally:
        stop(proc)
        kill_ray_cluster(tmp)


def test_lfdm_serve_with_address_applies_the_token(checkpoint, ray_tmpdir):
    tmp, gcs, port = ray_tmpdir(), free_port(), free_port()
    env = base_env(tmp)
    head = subprocess.Popen([os.path.join(BIN, "ray"), "start", "--head", "--block", f"--port={gcs}",
                             "--node-ip-address=127.0.0.1", "--num-cpus=4", "--include-dashboard=false",
                             f"--temp-dir={tmp}", "--disable-usage-stats"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    token = secrets.token_urlsafe(16)
    proc = None
    try:
        proc = subprocess.Popen([os.path.join(BIN, "lfdm"), "serve", "--checkpoint", checkpoint, "--port",
                                 str(port), "--address", f"127.0.0.1:{gcs}"], cwd=ROOT,
                                env={**env, "LFDM_SERVE_TOKEN": token}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        wait_for(url, proc)
        assert_token_enforced(url, token)
    finally:
        if proc is not None:
            stop(proc)
        stop(head)
        kill_ray_cluster(tmp)


def test_serve_run_of_the_shipped_config_applies_the_token(checkpoint, ray_tmpdir, tmp_path):
    """The operator's path: `serve run serve/serve_config.yaml`, with the checkpoint, a free port, CPU resources
    and the token (runtime_env.env_vars) filled into a copy of the shipped file."""
    tmp, port, token = ray_tmpdir(), free_port(), secrets.token_urlsafe(16)
    with open(os.path.join(ROOT, "serve", "serve_config.yaml")) as f:
        config = yaml.safe_load(f)
    config["http_options"]["port"] = port
    application = config["applications"][0]
    application["args"]["checkpoint"] = checkpoint
    application["runtime_env"] = {"env_vars": {"LFDM_SERVE_TOKEN": token}}
    for deployment in application["deployments"]:
        deployment["ray_actor_options"] = {"num_cpus": 0.25}
        deployment.pop("autoscaling_config", None)
        deployment["num_replicas"] = 1
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = base_env(tmp)
    env.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    proc = subprocess.Popen([os.path.join(BIN, "serve"), "run", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url, proc)
        assert_token_enforced(url, token)
    finally:
        stop(proc)
        kill_ray_cluster(tmp)
