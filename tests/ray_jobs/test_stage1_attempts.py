"""Stage 1 trained again when its collapse guard stops it (the demo's orchestration; local training, no Ray)."""
import os

import pytest
import torch

from lfdm.runs import RunError
from lfdm.training.collapse_guard import STOPPED, TrainingStopped, write_stopped
from lfdm.training.lfae_stage import build_lfae_stage
from lfdm.training.run import LocalHooks, run_stage
from ray_jobs.common import TrainJob
from ray_jobs.stage1_attempts import ATTEMPTS, SEED_STRIDE, train_until_healthy


def train_locally(job: TrainJob):
    """What ray_jobs.train_lfae.run does, in this process."""
    stage = build_lfae_stage(job.model_config(), job.data, torch.device("cpu"))
    result = run_stage(stage, LocalHooks(torch.device("cpu")), job.run_uri, job.model_uri, log=lambda s: None)
    if "stopped" in result:
        raise TrainingStopped(result["stopped"])


def stage_runner(titles):
    def stage(title, skip, run):
        titles.append((title, skip))
        return None if skip else run()
    return stage


def job(tmp_path, tiny_dataset, **overrides):
    root, _ = tiny_dataset
    return TrainJob(preset="tiny", name="lfae", output=str(tmp_path), data=str(root / "manifest.parquet"),
                    overrides={"train.lfae.steps": 4, "train.lfae.log_every": 1, "train.lfae.seed": 7, **overrides})


def test_a_stopped_first_run_is_passed_over_and_the_next_seed_trains(tmp_path, tiny_dataset):
    first = job(tmp_path, tiny_dataset)
    write_stopped(first.run_uri, 2, "stage 1 stopped at step 2 of 4: collapsed")    # left by an earlier demo
    titles, said = [], []
    chosen = train_until_healthy(first, train_locally, stage_runner(titles), said.append)
    assert chosen.name == "lfae_retry1" and chosen.model_config().train.lfae.seed == 7 + SEED_STRIDE
    assert os.path.exists(os.path.join(chosen.model_uri, "config.json"))
    assert titles == [("stage 1: latent flow auto-encoder on Ray Train, attempt 2 (lfae_retry1, "
                       f"train.lfae.seed={7 + SEED_STRIDE})", False)]
    assert "collapsed" in said[0] and "again from another seed" in said[0]
    titles.clear()                                                      # a second demo reuses the retry's model
    assert train_until_healthy(first, train_locally, stage_runner(titles), said.append).name == "lfae_retry1"
    assert titles[0][1] is True


def test_every_attempt_stopped_is_an_error_naming_each(tmp_path, tiny_dataset):
    always = job(tmp_path, tiny_dataset, **{"train.lfae_guard.window": (0.0, 0.5),
                                            "train.lfae_guard.min_flow_px": 1e6})
    with pytest.raises(RunError, match=f"stopped {ATTEMPTS} times") as info:
        train_until_healthy(always, train_locally, stage_runner([]), lambda s: None)
    assert all(f"lfae_retry{a}: stage 1 stopped at step 2 of 4" in str(info.value) for a in range(1, ATTEMPTS))
    assert all(os.path.exists(os.path.join(str(tmp_path), name, STOPPED))
               for name in ("lfae", *(f"lfae_retry{a}" for a in range(1, ATTEMPTS))))
