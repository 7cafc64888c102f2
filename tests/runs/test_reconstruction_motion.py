"""The ceiling of stage 2's condition accuracy, checked with reconstructions whose motion is known exactly."""
from __future__ import annotations

import pytest
import torch

from lfdm.data.sampling import clip_indices
from lfdm.runs.reconstruction_motion import evaluate_reconstruction_motion

MOVING = ["move left", "move right", "move up", "move down", "zoom in", "zoom out", "rotate clockwise",
          "rotate counterclockwise"]


def measure(synthetic_dataset, reconstruct):
    root, _ = synthetic_dataset
    return evaluate_reconstruction_motion(reconstruct, str(root / "manifest.parquet"), num_frames=16, image_size=64)


def test_perfect_reconstructions_score_like_the_real_clips(synthetic_dataset):
    result = measure(synthetic_dataset, lambda source, frames: frames)
    assert result["accuracy"] == result["real_accuracy"] >= 0.85
    for label in MOVING:
        row = result["per_class"][label]
        assert row["accuracy"] == row["real_accuracy"] and row["object_lost"] == 0
        assert row["motion_ratio"] == pytest.approx(1.0)
    assert result["per_class"]["stay still"]["motion_ratio"] is None


def test_copying_the_source_shows_no_motion(synthetic_dataset):
    result = measure(synthetic_dataset, lambda source, frames: source.expand_as(frames))
    assert result["per_class"]["stay still"]["accuracy"] == 1.0
    for label in MOVING:
        assert result["per_class"][label]["accuracy"] == 0.0
        assert result["per_class"][label]["motion_ratio"] == pytest.approx(0.0, abs=0.02)


def test_half_speed_reconstructions_show_the_motion_of_the_clip_s_middle_frame(synthetic_dataset):
    # the clip's frame 7 ends the reconstruction; the trajectories are linear in time (log-linear for zooms)
    index = clip_indices(24, 16, "uniform")
    expected = index[7] / index[15]
    result = measure(synthetic_dataset, lambda source, frames: frames[torch.arange(len(frames)) // 2])
    for label in MOVING:
        assert result["per_class"][label]["motion_ratio"] == pytest.approx(expected, abs=0.1), label
