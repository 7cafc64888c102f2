"""`ray start --head` on loopback, `ray job submit` of a training job, success, then stop that cluster only."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from lfdm import checkpoint as ckpt
from tests.ray_jobs.conftest import RAY_TEST_ENV, kill_ray_cluster
from tests.support import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def test_ray_job_submit_against_a_started_cluster(tmp_path, tiny_dataset, ray_tmpdir):
    root, _ = tiny_dataset
    temp_dir, port, dashboard = ray_tmpdir(), free_port(), free_port()
    env = {**os.environ, **RAY_TEST_ENV, "PATH": BIN + os.pathsep + os.environ["PATH"], "RAY_TMPDIR": temp_dir}
    head = subprocess.Popen(
        [os.path.join(BIN, "ray"), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=4",
         # the agents' default ports are fixed, and the session's embedded Ray (ray_session) may hold them:
         # then the head comes up but no job agent ever registers ("No available agent to submit job")
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
         "--object-store-memory=200000000", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{address}/api/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and head.poll() is None, "the Ray head did not come up"
            time.sleep(1)
        out = tmp_path / "runs"
        while True:   # the head answers before its node's job agent has registered: nothing is submitted then
            submit = subprocess.run(
                [os.path.join(BIN, "ray"), "job", "submit", "--address", address, "--working-dir", ROOT, "--",
                 "python", "-m", "ray_jobs.train_lfae", "--set", "preset=tiny", f"data={root / 'manifest.parquet'}",
                 f"output={out}", "name=submitted", "num_workers=1", "--override", "train.lfae.steps=2"],
                env=env, capture_output=True, text=True, timeout=600)
            if "No available agent to submit job" not in submit.stderr or time.time() > deadline + 60:
                break
            time.sleep(2)
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
        assert "succeeded" in (submit.stdout + submit.stderr).lower()
        model, loaded = ckpt.load_lfae(str(out / "submitted" / "model"), preset="tiny")
        assert loaded.extra["step"] == 2
    finally:
        os.killpg(head.pid, signal.SIGTERM)               # `ray start --block` stops what it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        time.sleep(2)
        kill_ray_cluster(temp_dir)                         # workers in their own process groups, if any
