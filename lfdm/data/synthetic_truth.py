"""The true motion of a synthetic video, replayed from its seed: where each object pixel of frame t was at frame 0.

The renderer draws frame t's object at pose (c_t, r_t, a_t): image point p = c_t + r_t R(a_t) q for q in the
shape's unit frame. A driving pixel p on the object therefore came from the source point
    p_0 = c_0 + r_0 R(a_0) R(-a_t) (p - c_t) / r_t,
the backward motion a stage-1 flow estimates; background pixels do not move.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from lfdm.data.manifest import VideoRecord
from lfdm.data.synthetic import SyntheticSpec, Trajectory, sample_trajectory
from lfdm.data.synthetic_render import Subject, background, shape_mask
from lfdm.io.seeding import numpy_rng


def replay_trajectory(spec: SyntheticSpec, record: VideoRecord) -> Trajectory:
    """The trajectory ``write_synthetic_dataset`` drew for this video (same seed, same draws in order)."""
    rng = numpy_rng(spec.seed, record.video_id)
    background(spec.image_size, rng)                 # drawn first by render_video
    return sample_trajectory(record.label_text, spec.image_size, rng)


def subject_of(record: VideoRecord) -> Subject:
    return Subject.make(int(record.subject.lstrip("s")))


def true_backward_motion(traj: Trajectory, subject: Subject, t: float,
                         points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """points (..., 2) in render pixels (x, y) -> (object mask (...), source positions (..., 2)) at time t."""
    c_t, r_t, a_t = traj.pose(t)
    c_0, r_0, a_0 = traj.pose(0.0)
    d = points - np.asarray(c_t)
    cos, sin = np.cos(a_t), np.sin(a_t)
    u = (cos * d[..., 0] + sin * d[..., 1]) / r_t               # R(-a_t) (p - c_t) / r_t
    v = (-sin * d[..., 0] + cos * d[..., 1]) / r_t
    inside = shape_mask(subject.shape, u, v)
    cos0, sin0 = np.cos(a_0), np.sin(a_0)
    source = np.stack([c_0[0] + r_0 * (cos0 * u - sin0 * v), c_0[1] + r_0 * (sin0 * u + cos0 * v)], -1)
    return inside, np.where(inside[..., None], source, points)
