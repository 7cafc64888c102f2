"""The one training loop (lfdm.training.run): resume, metrics log, step checkpoints, keep-N."""
from __future__ import annotations

import json
import os

import pytest
import torch

from lfdm import checkpoint as ckpt
from lfdm.presets import get_preset
from lfdm.training.lfae_stage import build_lfae_stage
from lfdm.training.run import LocalHooks, run_stage, step_checkpoints

CPU = torch.device("cpu")
TIMING = ("samples_per_s", "elapsed_s")


class CrashAtCheckpoint(LocalHooks):
    """Dies while storing the step checkpoint of ``step``: after the metrics were flushed, before the folder exists."""

    def __init__(self, step: int):
        super().__init__(CPU)
        self.step = step

    def report(self, metrics, run_uri, step, write_checkpoint, keep):
        if write_checkpoint is not None and step == self.step:
            raise RuntimeError("killed while writing a checkpoint")
        super().report(metrics, run_uri, step, write_checkpoint, keep)


def metrics(run: str):
    lines = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    return [{k: v for k, v in line.items() if k not in TIMING} for line in lines]


def stage(manifest: str, **overrides):
    cfg = get_preset("tiny", {"train.lfae.steps": 6, "train.lfae.checkpoint_every": 2, "train.lfae.log_every": 1,
                              **overrides})
    return build_lfae_stage(cfg, manifest, CPU)


# the second case ramps the equivariance rotation over the steps: a resumed run must pick the ramp up where it was
@pytest.mark.parametrize("overrides", [{}, {"train.lfae_loss.equivariance_rotation": 90.0,
                                            "train.lfae_loss.equivariance_rotation_ramp": (0.3, 0.7)}])
def test_a_resumed_run_equals_an_uninterrupted_one_log_and_weights(tmp_path, tiny_dataset, overrides):
    root, _ = tiny_dataset
    manifest = str(root / "manifest.parquet")
    clean, broken = str(tmp_path / "clean"), str(tmp_path / "broken")
    run_stage(stage(manifest, **overrides), LocalHooks(CPU), os.path.join(clean, "train"), clean, log=lambda s: None)
    with pytest.raises(RuntimeError, match="killed"):
        run_stage(stage(manifest, **overrides), CrashAtCheckpoint(4), os.path.join(broken, "train"), broken,
                  log=lambda s: None)
    # the crash left steps 3-4 in the log but no checkpoint 4: the resumed run drops and replays them
    assert [m["step"] for m in metrics(os.path.join(broken, "train"))] == [1, 2, 3, 4]
    said = []
    run_stage(stage(manifest, **overrides), LocalHooks(CPU), os.path.join(broken, "train"), broken, log=said.append)
    assert any(line.startswith("resuming stage 1 from step 2") for line in said)
    assert metrics(os.path.join(broken, "train")) == metrics(os.path.join(clean, "train"))
    assert [m["step"] for m in metrics(os.path.join(clean, "train"))] == [1, 2, 3, 4, 5, 6]
    a, b = ckpt.read_checkpoint(clean), ckpt.read_checkpoint(broken)
    assert a.extra["step"] == b.extra["step"] == 6
    for key, value in a.tensors.items():
        assert torch.equal(value, b.tensors[key]), key


def test_step_checkpoints_share_one_name_and_keep_the_newest_n(tmp_path, tiny_dataset):
    root, _ = tiny_dataset
    out = str(tmp_path / "run")
    run_stage(stage(str(root / "manifest.parquet"), **{"train.lfae.keep_checkpoints": 2}), LocalHooks(CPU),
              os.path.join(out, "train"), out, log=lambda s: None)
    assert [os.path.basename(u) for u in step_checkpoints(os.path.join(out, "train"))] == ["step_0000004", "step_0000006"]
    out_all = str(tmp_path / "all")
    run_stage(stage(str(root / "manifest.parquet"), **{"train.lfae.keep_checkpoints": None}), LocalHooks(CPU),
              os.path.join(out_all, "train"), out_all, log=lambda s: None)
    assert [ckpt.read_info(u).extra["step"] for u in step_checkpoints(os.path.join(out_all, "train"))] == [2, 4, 6]
