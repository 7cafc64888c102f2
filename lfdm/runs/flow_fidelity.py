"""Stage-1 flow against the synthetic dataset's true motion, per class.

For every video of a split: source = frame 0, driving = ``num_driving`` frames spread over the video; the
auto-encoder's backward flow at its own resolution is compared, on the object's pixels of the driving frame,
with the replayed true motion (``lfdm.data.synthetic_truth``). Per class:
- ``magnitude_ratio`` = sum |predicted displacement| / sum |true displacement| (1 = the full motion; a turn
  the regions cannot express shows up here as a small ratio);
- ``endpoint_error_px`` = mean |predicted - true| in image pixels, and ``true_px`` = mean |true| beside it.
"""
from __future__ import annotations

import json
from typing import Dict

import numpy as np
import torch

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.synthetic import SyntheticSpec
from lfdm.data.synthetic_truth import replay_trajectory, subject_of, true_backward_motion
from lfdm.io import storage
from lfdm.io.flow_vis import grid_displacement
from lfdm.models.autoencoder import LatentFlowAutoencoder


def synthetic_spec_beside(manifest_uri: str) -> SyntheticSpec:
    uri = storage.join(storage.parent(manifest_uri), "synthetic.json")
    if not storage.exists(uri):
        raise ValueError(f"{manifest_uri} is not a synthetic dataset (no synthetic.json beside it): "
                         f"flow fidelity needs the true motion")
    return SyntheticSpec(**json.loads(storage.read_text(uri)))


def flow_points_px(h: int, w: int, image_size: int, align_corners: bool) -> np.ndarray:
    """Render-pixel (x, y) of each flow-grid point, (h, w, 2); grids run over [-1, 1] (models.warp)."""
    xs, ys = np.linspace(-1, 1, w), np.linspace(-1, 1, h)
    to_px = (lambda a: 0.5 + (a + 1) / 2 * (image_size - 1)) if align_corners else (lambda a: (a + 1) / 2 * image_size)
    gx, gy = np.meshgrid(to_px(xs), to_px(ys))
    return np.stack([gx, gy], -1)


@torch.no_grad()
def evaluate_flow_fidelity(model: LatentFlowAutoencoder, manifest_uri: str, split: str = "test", *,
                           num_driving: int = 8, device: str | torch.device = "cpu") -> Dict[str, object]:
    spec = synthetic_spec_beside(manifest_uri)
    records = read_manifest(manifest_uri).split(split).records
    if not records:
        raise ValueError(f"{manifest_uri} has no videos in split {split!r}")
    model = model.to(device).eval()
    size, align = spec.image_size, model.cfg.align_corners
    sums: Dict[str, np.ndarray] = {}                                 # label -> [pred, true, error, count]
    for record in records:
        traj, subject = replay_trajectory(spec, record), subject_of(record)
        indices = np.linspace(0, record.num_frames - 1, num_driving + 1).round().astype(int)[1:]
        frames = load_frames(record, [0, *indices.tolist()], size).to(device)
        flow, _, _, _ = model.estimate_flow(frames[:1].expand(len(indices), -1, -1, -1), frames[1:])
        flow = flow.float().cpu().numpy()                            # (n, h, w, 2) backward grid in [-1, 1]
        points = flow_points_px(flow.shape[1], flow.shape[2], size, align)
        to_image_px = ((size - 1) if align else size) / (flow.shape[2] - 1)            # flow pixels -> image pixels
        predicted_px = np.stack(grid_displacement(flow), -1) * to_image_px              # (n, h, w, 2)
        acc = sums.setdefault(record.label_text, np.zeros(4))
        for k, index in enumerate(indices):
            inside, source = true_backward_motion(traj, subject, index / (record.num_frames - 1), points)
            if not inside.any():
                continue
            predicted = predicted_px[k]
            true = source - points
            acc += [np.linalg.norm(predicted[inside], axis=-1).sum(), np.linalg.norm(true[inside], axis=-1).sum(),
                    np.linalg.norm((predicted - true)[inside], axis=-1).sum(), inside.sum()]
    per_class = {label: {"magnitude_ratio": float(p / t) if t > 1e-9 * n else None,
                         "endpoint_error_px": float(e / n), "true_px": float(t / n), "predicted_px": float(p / n)}
                 for label, (p, t, e, n) in sorted(sums.items()) if n}
    return {"split": split, "videos": len(records), "driving_frames_per_video": num_driving, "per_class": per_class,
            "protocol": "source frame 0; backward flow at the model's flow resolution vs the replayed true motion, "
                        "on the driving frame's object pixels; displacements in image pixels"}
