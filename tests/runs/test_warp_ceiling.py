"""benchmarks/warp_ceiling.py: frame 0 warped by the synthetic dataset's true motion, against copying it."""
import torch

from benchmarks.warp_ceiling import true_grid, warp_ceiling, warp_true
from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.synthetic_truth import replay_trajectory, subject_of
from lfdm.models.warp import coordinate_grid
from lfdm.runs.flow_fidelity import synthetic_spec_beside


def test_true_motion_at_time_zero_is_the_identity_grid(tiny_dataset):
    root, _ = tiny_dataset
    manifest = str(root / "manifest.parquet")
    spec = synthetic_spec_beside(manifest)
    record = next(r for r in read_manifest(manifest).records if r.label_text == "rotate clockwise")
    traj, subject = replay_trajectory(spec, record), subject_of(record)
    for n in (8, 32):
        torch.testing.assert_close(true_grid(traj, subject, 0.0, n, 32)[0], coordinate_grid(n, n), atol=1e-5, rtol=0)
    source = load_frames(record, [0], 32).float()
    torch.testing.assert_close(warp_true(source, traj, subject, 0.0, 8, 32), source, atol=1e-5, rtol=0)


def test_the_true_motion_rebuilds_moving_frames_better_than_copying_and_the_still_class_is_left_out(tiny_dataset):
    root, _ = tiny_dataset
    table = warp_ceiling(str(root / "manifest.parquet"), [8])
    assert "stay still" not in table and {"move left", "rotate clockwise", "zoom in"} <= set(table)
    for label in ("move left", "move right", "move up", "move down", "rotate clockwise", "zoom in"):
        assert table[label]["full_resolution"] < 0.9, (label, table[label])
