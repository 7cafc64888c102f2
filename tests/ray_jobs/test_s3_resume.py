"""Training against a real S3-compatible server on 127.0.0.1 (SeaweedFS): hard kill, orphaned partial
checkpoint folder, resume from the checkpoints in the bucket."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

from lfdm import checkpoint as ckpt
from lfdm.training.run import step_checkpoints
from tests.ray_jobs.conftest import RAY_TEST_ENV, kill_ray_cluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_job(env, args, kill_when=None, timeout=420):
    """python -m ray_jobs.train_lfae with its own embedded Ray; ``kill_when`` -> SIGKILL the whole cluster. Its
    output goes to a file: a pipe nobody reads while this waits could fill and block the driver."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.train_lfae", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def output() -> str:
        log.seek(0)
        return log.read()
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and time.time() < deadline:
            if kill_when is not None and kill_when():
                kill_ray_cluster(env["RAY_TMPDIR"])            # driver, GCS, raylet, controller and workers
                proc.wait(30)
                return None, output()
            time.sleep(0.5)
        if proc.poll() is None:
            raise TimeoutError("training job did not finish in time")
        return proc.returncode, output()
    finally:
        if proc.poll() is None:
            kill_ray_cluster(env["RAY_TMPDIR"])
        log.close()


def test_s3_checkpoints_hard_kill_and_resume(s3_server, tmp_path, tiny_dataset, ray_tmpdir):
    root, _ = tiny_dataset
    client = s3_server.client()
    client.create_bucket(Bucket="lfdm-test")
    env = {**os.environ, **RAY_TEST_ENV, **s3_server.env(), "RAY_TMPDIR": ray_tmpdir()}
    os.environ.update(s3_server.env())          # for our own storage calls below
    run = "s3://lfdm-test/runs/s3run"
    args = ["--set", "preset=tiny", f"data={root / 'manifest.parquet'}", "output=s3://lfdm-test/runs",
            "name=s3run", "num_workers=2", "--override", "train.lfae.steps=40", "train.lfae.log_every=2",
            "train.lfae.checkpoint_every=2", "train.lfae.keep_checkpoints=null"]

    def has_checkpoint():
        listed = client.list_objects_v2(Bucket="lfdm-test", Prefix="runs/s3run/step_0000004/")
        return any(o["Key"].endswith("config.json") for o in listed.get("Contents", []))

    code, log = run_job(env, args, kill_when=has_checkpoint)
    assert code is None, log                                   # killed mid-run
    time.sleep(3)                                              # nothing of the killed run may still write
    steps_before = sorted(ckpt.read_checkpoint(d).extra["step"] for d in step_checkpoints(run))
    assert 4 in steps_before and max(steps_before) < 40
    # what a worker hard-killed during an upload leaves behind: an unregistered folder without config.json
    orphan = "runs/s3run/step_0099999/model.safetensors"
    client.put_object(Bucket="lfdm-test", Key=orphan, Body=b"\0" * 10)
    env = {**env, "RAY_TMPDIR": ray_tmpdir()}
    code, log = run_job(env, args)
    assert code == 0, log
    resumed = [int(m) for m in re.findall(r"resuming stage 1 from step (\d+)", log)]
    # complete uploads may not have been registered when the job died (then they are orphans like the 2099 one):
    # the run resumes from a registered, complete checkpoint in the bucket, never from scratch or an orphan
    assert len(resumed) == 1 and resumed[0] in steps_before and resumed[0] >= 2, (resumed, steps_before)
    final = ckpt.read_checkpoint(f"{run}/model")
    assert final.extra["step"] == 40
    registered = sorted(ckpt.read_checkpoint(d).extra["step"] for d in step_checkpoints(run))
    assert registered == list(range(2, 41, 2))                  # none lost, none duplicated
