"""Ray jobs end to end on a real local Ray (loopback, 2 CPU workers, the tiny preset)."""
from __future__ import annotations

import os

import pytest
import torch

from lfdm.io import storage
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm import checkpoint as ckpt
from lfdm.training.run import step_checkpoints

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def job_args(output, name, **settings):
    sets = [f"output={output}", f"name={name}"] + [f"{k}={v}" for k, v in settings.items()]
    return ["--set", *sets]


def registered_steps(run_dir: str):
    return sorted(ckpt.read_checkpoint(d).extra["step"] for d in step_checkpoints(run_dir))


def test_train_precompute_train_dm_export(ray_session, tmp_path, tiny_dataset):
    from ray_jobs import precompute_flows, train_dm, train_lfae
    root, _ = tiny_dataset
    out = str(tmp_path / "runs")
    manifest = str(root / "manifest.parquet")
    assert train_lfae.main(["--config", "ray_jobs/configs/demo_lfae.yaml", *job_args(
        out, "lfae", preset="tiny", data=manifest, num_workers=2),
        "--override", "train.lfae.steps=4", "train.lfae.checkpoint_every=2"]) == 0
    lfae_uri = os.path.join(out, "lfae", "model")
    model, loaded = ckpt.load_lfae(lfae_uri, preset="tiny")
    assert loaded.extra["step"] == 4 and registered_steps(os.path.join(out, "lfae")) == [2, 4]
    flows = os.path.join(out, "flows")
    assert precompute_flows.main(job_args(out, "flows", data=manifest, lfae=lfae_uri, flows=flows,
                                          shard_size=8)) == 0
    assert sorted(os.listdir(os.path.join(flows, "shards"))) == [f"shard_{i:05d}.npz" for i in range(4)]
    assert train_dm.main(job_args(out, "dm", preset="tiny", lfae=lfae_uri, flows=flows, num_workers=2)
                         + ["--override", "train.dm.steps=4", "train.dm.checkpoint_every=2"]) == 0
    pipe = ImageToVideoPipeline.load(os.path.join(out, "dm", "model"))
    video = pipe(torch.rand(1, 3, 32, 32), ["zoom in"], seeds=[0], sampler="ddim", steps=2)
    assert video.frames.shape == (1, 3, 10, 32, 32)


def test_fault_injection_resumes_and_matches_an_uninterrupted_run(ray_session, tmp_path, tiny_dataset):
    from ray_jobs import train_lfae
    root, _ = tiny_dataset
    out = str(tmp_path / "runs")
    common = dict(preset="tiny", data=str(root / "manifest.parquet"), num_workers=2, max_failures=1)
    steps = ["--override", "train.lfae.steps=6", "train.lfae.checkpoint_every=2", "train.lfae.keep_checkpoints=null"]
    assert train_lfae.main(job_args(out, "faulty", fail_at_step=3, **common) + steps) == 0
    assert storage.exists(os.path.join(out, "faulty", ".fault_injected_step_3"))       # it did fail once
    assert registered_steps(os.path.join(out, "faulty")) == [2, 4, 6]                  # none lost or duplicated
    assert train_lfae.main(job_args(out, "clean", **common) + steps) == 0
    faulty = ckpt.read_checkpoint(os.path.join(out, "faulty", "model"))
    clean = ckpt.read_checkpoint(os.path.join(out, "clean", "model"))
    assert faulty.extra["step"] == clean.extra["step"] == 6
    for key, value in clean.tensors.items():
        torch.testing.assert_close(faulty.tensors[key], value, atol=1e-5, rtol=1e-4, msg=key)
    # rerunning a finished run with the same name resumes at its last step and re-exports
    assert train_lfae.main(job_args(out, "clean", **common) + steps) == 0
