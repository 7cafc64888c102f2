"""Generation and evaluation jobs on a real local Ray: resume after a kill, block/actor invariance,
corrupt and missing videos counted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from lfdm.io import storage
from tests.ray_jobs.conftest import RAY_TEST_ENV, kill_ray_cluster
from tests.support import save_tiny_model

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_dataset):
    _, manifest = tiny_dataset
    return save_tiny_model(str(tmp_path_factory.mktemp("model") / "lfdm"), manifest.classes)


@pytest.fixture(scope="module")
def i3d_weights():
    from lfdm.metrics.i3d_weights import fetch_reference
    return fetch_reference(log=lambda s: None)


def gen_args(out, name, data, model, n, **extra):
    sets = [f"output={out}", f"name={name}", f"data={data}", f"generation.checkpoint={model}",
            f"generation.num_videos={n}", "generation.batch_size=2", "generation.steps=2", "generation.sampler=ddim"]
    return ["--set", *sets, *[f"{k}={v}" for k, v in extra.items()]]


def test_generation_killed_midway_resumes_with_one_output_per_video(tmp_path, tiny_dataset, tiny_model, ray_tmpdir):
    root, _ = tiny_dataset
    out, n = str(tmp_path / "runs"), 16
    args = gen_args(out, "gen", root / "manifest.parquet", tiny_model, n, actors=1)
    env = {**os.environ, **RAY_TEST_ENV, "RAY_TMPDIR": ray_tmpdir()}
    meta = os.path.join(out, "gen", "meta")
    proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.generate", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(meta) and len(os.listdir(meta)) >= 4:
            kill_ray_cluster(env["RAY_TMPDIR"])                  # driver, raylet and every actor
            break
        time.sleep(0.2)
    proc.wait(60)
    time.sleep(2)
    assert kill_ray_cluster(env["RAY_TMPDIR"]) == 0                 # nothing of the killed job survived
    done_before = len([f for f in os.listdir(meta) if f.endswith(".json")])
    assert 0 < done_before < n, "the job should have been killed midway"
    env["RAY_TMPDIR"] = ray_tmpdir()
    result = subprocess.run([sys.executable, "-m", "ray_jobs.generate", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{done_before} done, {n - done_before} to do" in result.stdout
    table = storage.read_parquet(os.path.join(out, "gen", "generated.parquet")).to_pylist()
    assert sorted(r["video_id"] for r in table) == [f"gen{i:06d}" for i in range(n)]
    videos = sorted(f for f in os.listdir(os.path.join(out, "gen", "videos")) if not f.startswith("."))
    assert videos == [f"gen{i:06d}.npy" for i in range(n)]


def test_generation_independent_of_batch_and_actors(ray_session, tmp_path, tiny_dataset, tiny_model):
    from ray_jobs import generate
    from ray_jobs.common import GenerateJob, load_job_config
    root, _ = tiny_dataset
    out = str(tmp_path / "runs")
    a_args = gen_args(out, "a", root / "manifest.parquet", tiny_model, 6)[1:] + ["actors=1"]
    a = generate.run(load_job_config(GenerateJob, None, a_args), log=lambda s: None)
    b_args = gen_args(out, "b", root / "manifest.parquet", tiny_model, 6)[1:] + ["actors=2", "generation.batch_size=3"]
    b = generate.run(load_job_config(GenerateJob, None, b_args), log=lambda s: None)
    for i in range(6):
        va = np.load(os.path.join(a, "videos", f"gen{i:06d}.npy"))
        vb = np.load(os.path.join(b, "videos", f"gen{i:06d}.npy"))
        assert np.abs(va.astype(int) - vb.astype(int)).max() <= 1      # same noise; float reorderings only


def test_features_identical_with_one_or_several_blocks_and_actors(ray_session, tiny_dataset, i3d_weights):
    from lfdm.runs.evaluation import real_items
    from ray_jobs.common import EvaluateJob, load_job_config
    from ray_jobs.evaluate import ray_extract
    root, _ = tiny_dataset
    items = real_items(str(root / "manifest.parquet"), "test", 10, 1)[:6]
    base = [f"data={root / 'manifest.parquet'}", "evaluation.batch_size=2"]
    one = ray_extract(load_job_config(EvaluateJob, None, base + ["actors=1"]))(32, 10)(items)
    two = ray_extract(load_job_config(EvaluateJob, None, base + ["actors=2"]))(32, 10)(items)
    assert one.column("video_id").to_pylist() == two.column("video_id").to_pylist()
    np.testing.assert_array_equal(np.asarray(one.column("features").to_pylist()),
                                  np.asarray(two.column("features").to_pylist()))


def test_evaluation_counts_and_excludes_corrupt_and_missing(ray_session, tmp_path, tiny_dataset, tiny_model, i3d_weights):
    from ray_jobs import evaluate, generate
    from ray_jobs.common import EvaluateJob, GenerateJob, load_job_config
    root, _ = tiny_dataset
    out = str(tmp_path / "runs")
    gen = generate.run(load_job_config(GenerateJob, None, gen_args(out, "gen", root / "manifest.parquet", tiny_model, 8)[1:]),
                       log=lambda s: None)
    with open(os.path.join(gen, "videos", "gen000001.npy"), "wb") as f:
        f.write(b"\x93NUMPY garbage")                                   # corrupt
    os.remove(os.path.join(gen, "meta", "gen000002.json"))              # missing (never finished)
    job = load_job_config(EvaluateJob, None, [f"data={root / 'manifest.parquet'}", f"output={out}", "name=eval",
                                              f"evaluation.generated={gen}", "evaluation.bootstrap=5",
                                              "evaluation.group_bootstrap=2"])
    results = evaluate.run(job, log=lambda s: None)
    counts = results["excluded"]["counts"]
    assert counts == {"real_corrupt": 0, "generated_corrupt": 1, "generated_missing": 1}
    assert results["excluded"]["missing_generated"] == ["gen000002"]
    assert results["n_gen"] == 6 and results["n_real"] == 9
    generated = [r for r in storage.read_parquet(os.path.join(out, "eval", "features.parquet")).to_pylist()
                 if r["kind"] == "generated" and r["status"] == "ok"]
    classes = list(tiny_dataset[1].classes)
    hits = [r["predicted"] == classes.index(r["label"]) for r in generated]       # recomputed from the table
    assert len(generated) == 6 and results["condition_accuracy"] == pytest.approx(np.mean(hits))
    per_class = results["condition_accuracy_per_class"]
    assert sum(v["n"] for v in per_class.values()) == 6
    assert sum(v["n"] * v["accuracy"] for v in per_class.values()) == pytest.approx(sum(hits))
    for name in ("results.json", "results.md", "cfvd_per_class.png", "sfvd_per_subject.png", "features.parquet"):
        assert os.path.exists(os.path.join(out, "eval", name)), name
    cached = sorted(os.listdir(os.path.join(out, "feature_cache")))
    assert len(cached) == 2 and cached[0].startswith("real_") and cached[1].startswith("reference7_")
    again = evaluate.run(job, log=lambda s: None)                        # real features reused from the cache
    assert again["fvd"] == pytest.approx(results["fvd"])


def test_sweep_grid_shares_real_statistics_writes_table_and_plot_and_reuses_cells(
        ray_session, tmp_path, tiny_dataset, tiny_model, i3d_weights):
    from ray_jobs import sweep
    from ray_jobs.common import SweepJob, load_job_config
    root, _ = tiny_dataset
    out = str(tmp_path / "runs")
    job = load_job_config(SweepJob, None, [f"data={root / 'manifest.parquet'}", f"output={out}", "name=sw",
                                 "generation.num_videos=4", "generation.batch_size=2",
                                 f"sweep.checkpoints=[{tiny_model}]", "sweep.samplers=[ddim, dpmpp]",
                                 "sweep.steps=[1, 2]", "sweep.guidance=[1.0]",
                                 "evaluation.bootstrap=3", "evaluation.group_bootstrap=2"])
    rows = sweep.run(job, log=lambda s: None)
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", 1), ("ddim", 2), ("dpmpp", 1), ("dpmpp", 2)]
    assert all(r["n_gen"] == 4 and np.isfinite(r["fvd"]) and r["seconds_per_video"] > 0 for r in rows)
    assert len({r["fvd"] for r in rows}) > 1                               # the cells really differ
    run_dir = os.path.join(out, "sw")
    cached = sorted(os.listdir(os.path.join(run_dir, "feature_cache")))  # one real and one reference table for all cells
    assert len(cached) == 2 and cached[0].startswith("real_") and cached[1].startswith("reference4_")
    assert all(r["kvd_static"] is not None and r["kvd_real_vs_real"] is not None and "kvd_ratio" in r for r in rows)
    table = open(os.path.join(run_dir, "sweep.md")).read()
    assert table.count("\n") == 4 + len(rows) and "| dpmpp | 2 |" in table
    assert os.path.getsize(os.path.join(run_dir, "fvd_vs_steps.png")) > 1000
    assert json.load(open(os.path.join(run_dir, "sweep.json"))) == json.loads(json.dumps(rows))
    stamp = os.path.getmtime(os.path.join(run_dir, "ckpt0_ddim_1_g1", "evaluate", "results.json"))
    assert sweep.run(job, log=lambda s: None) == rows                      # finished cells are reused
    assert os.path.getmtime(os.path.join(run_dir, "ckpt0_ddim_1_g1", "evaluate", "results.json")) == stamp
