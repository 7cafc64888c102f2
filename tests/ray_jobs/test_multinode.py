"""The jobs on a real multi-node Ray cluster (a head and worker nodes on 127.0.0.1, tests/cluster.py) while nodes
and drivers are SIGKILLed: exactly one output per item, bitwise equal to an undisturbed run, no temporary file
left, training resumed from its last checkpoint to the same weights, and a lost node that is not replaced ends
a training job with an error naming what is missing instead of a wait without end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from lfdm import checkpoint as ckpt
from lfdm.io import storage
from tests.cluster import LocalCluster
from tests.support import save_tiny_model

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Driver:
    """A job driver in the background, its output in a file (a pipe nobody reads while the test waits would
    fill and block the driver)."""

    def __init__(self, args, env, log_path: str):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.running():
            os.killpg(self.proc.pid, 9)
        self.proc.wait(30)

    def finish(self, timeout: float) -> int:
        """The exit status; past ``timeout`` the driver is killed and the test fails with what it printed."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the driver did not end within {timeout:.0f} s; it printed:\n{self.output()[-6000:]}")


def job(module: str, cluster: LocalCluster, *sets: str, wait: bool = True, log: str = ""):
    args = [sys.executable, "-m", f"ray_jobs.{module}", "--set", f"address={cluster.address}", *sets]
    if wait:
        return subprocess.run(args, cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=900)
    return Driver(args, cluster.env, log)


def wait_until(predicate, driver: Driver = None, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out" + (f"; the driver printed:\n{driver.output()[-3000:]}"
                                                      if driver else "")
        assert driver is None or driver.running(), driver.output()[-3000:]
        time.sleep(0.2)


def files(folder: str):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the module: a head without CPUs (so work lands on worker nodes) and two 1-CPU workers;
    each test kills a worker node and adds a replacement."""
    import shutil
    from tests.ray_fixtures import short_ray_tmpdir
    temp_dir = short_ray_tmpdir()
    local = LocalCluster(temp_dir, head_cpus=0)
    try:
        local.add_worker("w1", cpus=1)
        local.add_worker("w2", cpus=1)
        yield local
    finally:
        local.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def replace_a_worker(cluster: LocalCluster) -> None:
    """SIGKILL the oldest worker node, and let a new one join."""
    victim = next(iter(cluster.workers))
    cluster.kill_worker(victim)
    cluster.add_worker(f"{victim}x", cpus=1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_dataset):
    _, manifest = tiny_dataset
    return save_tiny_model(str(tmp_path_factory.mktemp("mn_model") / "lfdm"), manifest.classes)


def test_generation_survives_a_lost_node_and_a_killed_driver_bit_for_bit(tmp_path, tiny_dataset, tiny_model, cluster):
    root, _ = tiny_dataset
    out = str(tmp_path / "runs")
    common = [f"output={out}", f"data={root / 'manifest.parquet'}", f"generation.checkpoint={tiny_model}",
              "generation.num_videos=12", "generation.batch_size=2", "generation.sampler=ddim",
              "generation.steps=8", "actors=2"]
    reference = job("generate", cluster, "name=reference", *common)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    run = os.path.join(out, "faulty")
    meta, videos = os.path.join(run, "meta"), os.path.join(run, "videos")
    # 1. a worker node SIGKILLed while actors generate on it; a replacement node joins
    driver = job("generate", cluster, "name=faulty", *common, wait=False, log=str(tmp_path / "driver.log"))
    wait_until(lambda: len(files(meta)) >= 3, driver)
    replace_a_worker(cluster)
    # 2. then the driver SIGKILLed; what it was writing is left behind
    wait_until(lambda: len(files(meta)) >= 7 or not driver.running(), timeout=600)
    driver.kill()
    stale = os.path.join(videos, ".gen000099.npy.tmp-0123abcd")     # as a writer killed before its rename
    open(stale, "wb").write(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    rerun = job("generate", cluster, "name=faulty", *common)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert files(meta) == [f"gen{i:06d}.json" for i in range(12)]                  # one meta per video
    assert files(videos) == [f"gen{i:06d}.npy" for i in range(12)]                 # one output, no temp file
    for i in range(12):
        a = np.load(os.path.join(out, "reference", "videos", f"gen{i:06d}.npy"))
        b = np.load(os.path.join(videos, f"gen{i:06d}.npy"))
        assert np.array_equal(a, b), f"gen{i:06d} differs from the undisturbed run"
    table = storage.read_parquet(os.path.join(run, "generated.parquet")).to_pylist()
    assert sorted(r["video_id"] for r in table) == [f"gen{i:06d}" for i in range(12)]


@pytest.fixture(scope="module")
def lfae_and_flows(tmp_path_factory, tiny_dataset):
    from lfdm.cli import main as cli
    root, _ = tiny_dataset
    folder = tmp_path_factory.mktemp("mn_stage1")
    lfae, flows = str(folder / "lfae"), str(folder / "flows")
    assert cli(["train", "lfae", "--preset", "tiny", "--data", str(root / "manifest.parquet"), "--out", lfae,
                "--override", "train.lfae.steps=2"]) == 0
    return lfae, flows


def test_flow_precompute_and_evaluation_with_a_node_killed_equal_undisturbed(tmp_path, tiny_dataset, tiny_model,
                                                                               lfae_and_flows, cluster):
    from lfdm.metrics.i3d_weights import fetch_reference
    fetch_reference(log=lambda s: None)
    root, _ = tiny_dataset
    lfae, _ = lfae_and_flows
    out = str(tmp_path / "runs")
    data = f"data={root / 'manifest.parquet'}"
    flows = {name: os.path.join(out, name) for name in ("flows_ref", "flows_faulty")}
    ref = job("precompute_flows", cluster, f"output={out}", "name=fr", data, f"lfae={lfae}",
              f"flows={flows['flows_ref']}", "shard_size=2", "actors=2")
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    driver = job("precompute_flows", cluster, f"output={out}", "name=ff", data, f"lfae={lfae}",
                 f"flows={flows['flows_faulty']}", "shard_size=2", "actors=2", wait=False,
                 log=str(tmp_path / "flows.log"))
    shards = os.path.join(flows["flows_faulty"], "shards")
    wait_until(lambda: len(files(shards)) >= 2, driver)
    replace_a_worker(cluster)
    assert driver.finish(600) == 0, driver.output()[-3000:]
    assert files(shards) == files(os.path.join(flows["flows_ref"], "shards"))
    for name in files(shards):
        a, b = (np.load(os.path.join(f, "shards", name)) for f in flows.values())
        for key in a.files:
            assert np.array_equal(a[key], b[key]), (name, key)

    generated = job("generate", cluster, f"output={out}", "name=gen", data, f"generation.checkpoint={tiny_model}",
                    "generation.num_videos=9", "generation.batch_size=3", "generation.steps=2",
                    "generation.sampler=ddim")
    assert generated.returncode == 0, generated.stdout[-3000:] + generated.stderr[-3000:]
    evaluation = [f"output={out}", data, f"evaluation.generated={os.path.join(out, 'gen')}",
                  "evaluation.batch_size=1", "evaluation.bootstrap=2", "evaluation.group_bootstrap=2", "actors=2"]
    ref = job("evaluate", cluster, "name=eval_ref", *evaluation, f"evaluation.feature_cache={out}/cache_ref")
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    driver = job("evaluate", cluster, "name=eval_faulty", *evaluation, f"evaluation.feature_cache={out}/cache_f",
                 wait=False, log=str(tmp_path / "eval.log"))
    time.sleep(8)                                            # actors extracting features
    replace_a_worker(cluster)
    assert driver.finish(600) == 0, driver.output()[-3000:]
    a, b = (storage.read_parquet(os.path.join(out, name, "features.parquet")).to_pylist()
            for name in ("eval_ref", "eval_faulty"))
    assert [r["video_id"] for r in a] == [r["video_id"] for r in b] and len(a) == len({r["video_id"] for r in a})
    assert all(np.array_equal(x["features"], y["features"]) for x, y in zip(a, b))
    results = [json.load(open(os.path.join(out, name, "results.json"))) for name in ("eval_ref", "eval_faulty")]
    assert results[0]["fvd"] == results[1]["fvd"]


def test_stage2_training_resumes_after_a_lost_node_and_fails_clearly_without_one(tmp_path, lfae_and_flows, cluster):
    """Last in the module: it leaves the cluster with one worker node."""
    from lfdm.training.flow_cache import precompute_local
    lfae, flows = lfae_and_flows
    manifest = ckpt.read_info(lfae).extra["manifest"]
    if not os.path.exists(os.path.join(flows, "cache.json")):
        precompute_local(lfae, manifest, flows, progress=False)
    out = str(tmp_path / "runs")
    common = [f"output={out}", "preset=tiny", f"lfae={lfae}", f"flows={flows}", "num_workers=2",
              "resources_per_worker={CPU: 1, worker_node: 1}", "max_failures=2", "placement_timeout_s=180"]
    steps = ["--override", "train.dm.steps=8", "train.dm.checkpoint_every=2", "train.dm.keep_checkpoints=null"]
    clean = job("train_dm", cluster, "name=clean", *common, *steps)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    run = os.path.join(out, "faulty")
    driver = job("train_dm", cluster, "name=faulty", *common, *steps, wait=False, log=str(tmp_path / "train.log"))
    wait_until(lambda: os.path.exists(os.path.join(run, "step_0000004", "config.json")), driver, timeout=600)
    replace_a_worker(cluster)                                     # a worker node dies mid-run, and is replaced
    status = driver.finish(600)
    output = driver.output()
    assert status == 0, output[-3000:]
    assert "resuming stage 2 from step" in output
    a, b = ckpt.read_checkpoint(os.path.join(out, "clean", "model")), ckpt.read_checkpoint(os.path.join(run, "model"))
    assert a.extra["step"] == b.extra["step"] == 8
    for key, value in a.tensors.items():
        torch.testing.assert_close(b.tensors[key], value, atol=1e-5, rtol=1e-4, msg=key)
    logged = [json.loads(line)["step"] for line in open(os.path.join(run, "metrics.jsonl"))]
    assert logged == sorted(set(logged)) and logged[-1] == 8           # no step twice, none missing at the end

    # a node lost and not replaced: a bounded wait, then an error that names the missing resources
    cluster.kill_worker(next(iter(cluster.workers)))
    stuck = job("train_dm", cluster, "name=stuck", *common, "placement_timeout_s=10", "placement_retries=0",
                *steps)
    assert stuck.returncode != 0
    said = stuck.stdout + stuck.stderr
    assert "could not place 2 training workers" in said and "worker_node" in said, said[-3000:]
