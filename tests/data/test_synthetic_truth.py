"""The replayed true motion of synthetic videos: it must carry frame 0 onto frame t of the videos on disk, and an
oracle flow made from it must score a perfect flow fidelity."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lfdm.data.synthetic import SyntheticSpec
from lfdm.data.synthetic_truth import replay_trajectory, subject_of, true_backward_motion
from lfdm.io.video import read_frames
from lfdm.presets import get_preset
from lfdm.runs.flow_fidelity import evaluate_flow_fidelity, flow_points_px

SPEC = SyntheticSpec(num_subjects=4, test_subjects=1, videos_per_class=1)   # the synthetic_dataset fixture's


def sample_px(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear sample of (S, S, 3) at render pixels (..., 2)."""
    size = frame.shape[0]
    grid = torch.from_numpy((points - 0.5) / (size - 1) * 2 - 1).float()[None]
    image = torch.from_numpy(frame).float().permute(2, 0, 1)[None]
    return F.grid_sample(image, grid, align_corners=True)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("label", ["move left", "zoom in", "rotate clockwise", "rotate counterclockwise"])
def test_true_motion_carries_frame_zero_onto_frame_t(synthetic_dataset, label):
    _, manifest = synthetic_dataset
    record = next(r for r in manifest.records if r.label_text == label)
    frames = read_frames(record.uri).astype(np.float32) / 255
    traj, subject = replay_trajectory(SPEC, record), subject_of(record)
    t_index = record.num_frames - 1
    coords = np.arange(64) + 0.5
    points = np.stack(np.meshgrid(coords, coords), -1)
    inside, source = true_backward_motion(traj, subject, 1.0, points)
    # away from the outline (anti-aliased, and the source may be clipped there) the object's colours match
    interior = inside & (F.max_pool2d(torch.from_numpy(~inside).float()[None, None], 5, 1, 2)[0, 0].numpy() == 0)
    assert interior.sum() > 30
    warped = sample_px(frames[0], source)
    error_true = np.abs(warped - frames[t_index])[interior].mean()
    error_still = np.abs(frames[0] - frames[t_index])[interior].mean()
    assert error_true < 0.08 and error_true < 0.4 * error_still, (error_true, error_still)


class OracleAutoencoder(torch.nn.Module):
    """Returns the replayed true flow for the videos it is asked about: flow fidelity must then be perfect."""

    def __init__(self, cfg, truths):
        super().__init__()
        self.cfg, self.truths, self.calls = cfg, truths, 0

    def estimate_flow(self, source, driving):
        record, traj, subject = self.truths[self.calls]
        self.calls += 1
        n, h = driving.shape[0], driving.shape[-1] // 4
        indices = np.linspace(0, record.num_frames - 1, n + 1).round().astype(int)[1:]
        points = flow_points_px(h, h, 64, True)
        flows = [true_backward_motion(traj, subject, i / (record.num_frames - 1), points)[1] for i in indices]
        grid = (np.stack(flows) - 0.5) / 63 * 2 - 1
        return torch.from_numpy(grid).float(), None, None, None


def test_flow_fidelity_of_the_true_motion_is_perfect(synthetic_dataset):
    root, manifest = synthetic_dataset
    records = manifest.split("test").records
    truths = [(r, replay_trajectory(SPEC, r), subject_of(r)) for r in records]
    cfg = replace(get_preset("demo64").autoencoder, align_corners=True)
    result = evaluate_flow_fidelity(OracleAutoencoder(cfg, truths), str(root / "manifest.parquet"), num_driving=4)
    classes = result["per_class"]
    assert len(classes) == 9 and classes["stay still"]["magnitude_ratio"] is None
    for label, row in classes.items():
        assert row["endpoint_error_px"] < 1e-3, (label, row)
        if label != "stay still":
            assert abs(row["magnitude_ratio"] - 1) < 1e-4 and row["true_px"] > 2, (label, row)
