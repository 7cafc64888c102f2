"""A training-free classifier of the synthetic dataset's motions.

The subject is the only saturated thing in a synthetic frame, so a saturation threshold segments
it. From the masks we read the motion between the first and the last frame:
- translation: centroid displacement, as a fraction of the image size;
- zoom: half the log of the area ratio (= log of the linear scale);
- rotation: the sum, over a chain of ~6 frame gaps, of the angle that best maps one masked frame
  onto the next (a bounded search, so symmetric shapes do not alias; both frames are blurred
  first, else the blur of resampling biases the search towards 0).
The largest normalised motion picks the class; below every threshold the video is "stay still".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lfdm.data.synthetic import CLASSES, DIRECTIONS

SATURATION_THRESHOLD = 0.25
MIN_AREA_FRACTION = 0.003
TRANSLATION_UNIT = 0.12       # fraction of the image size
ZOOM_UNIT = 0.18              # log-scale
ROTATION_UNIT = math.radians(30)
ANGLE_GRID = torch.linspace(-math.radians(35), math.radians(35), 71)
ROTATION_GAPS = 6
UNKNOWN = -1                  # the subject vanished: no class can be read


@dataclass(frozen=True)
class MotionEstimate:
    label: int                # index into CLASSES, or UNKNOWN
    translation: tuple        # (dx, dy) as fractions of the image size
    zoom: float               # log linear scale, > 0 grows
    rotation: float           # radians, > 0 clockwise on screen

    @property
    def label_text(self) -> str:
        return CLASSES[self.label] if self.label != UNKNOWN else "unknown"


def _as_float(frames) -> torch.Tensor:
    """(T, H, W, 3) uint8/float array or tensor -> float tensor (T, 3, H, W) in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(0, 3, 1, 2).contiguous()


def _blur(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    x = x[:, None]
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))
    return x[:, 0]


def _rotation_between(a: torch.Tensor, b: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor) -> float:
    """Angle (radians, clockwise > 0) that best maps masked frame a onto masked frame b."""
    _, h, w = a.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    def centroid(m):
        s = m.sum().clamp_min(1e-6)
        return torch.stack([(xs * m).sum() / s, (ys * m).sum() / s])
    ca, cb = centroid(ma), centroid(mb)
    scale = math.sqrt(float(mb.sum().clamp_min(1e-6) / ma.sum().clamp_min(1e-6)))
    cos, sin = torch.cos(ANGLE_GRID), torch.sin(ANGLE_GRID)
    px, py = xs - cb[0], ys - cb[1]
    # b(p) = a(ca + R(-theta) (p - cb) / scale)
    src_x = ca[0] + (cos[:, None, None] * px + sin[:, None, None] * py) / scale
    src_y = ca[1] + (-sin[:, None, None] * px + cos[:, None, None] * py) / scale
    grid = torch.stack([2 * src_x / (w - 1) - 1, 2 * src_y / (h - 1) - 1], -1)   # (N, H, W, 2)
    source = _blur(a * ma).unsqueeze(0).expand(len(ANGLE_GRID), -1, -1, -1)
    warped = F.grid_sample(source, grid, align_corners=True, padding_mode="zeros")
    region = ((mb > 0) | (F.grid_sample(ma[None, None].expand(len(ANGLE_GRID), 1, h, w), grid,
                                        align_corners=True) [:, 0] > 0.5)).float()
    error = ((warped - _blur(b * mb)).abs().sum(1) * region).sum((1, 2)) / region.sum((1, 2)).clamp_min(1)
    return float(ANGLE_GRID[int(error.argmin())])


def estimate_motion(frames) -> MotionEstimate:
    x = _as_float(frames)
    t, _, h, w = x.shape
    saturation = x.max(1).values - x.min(1).values
    masks = (saturation > SATURATION_THRESHOLD).float()          # (T, H, W)
    areas = masks.sum((1, 2))
    if bool((areas < MIN_AREA_FRACTION * h * w).any()):
        return MotionEstimate(UNKNOWN, (0.0, 0.0), 0.0, 0.0)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cx, cy = (masks * xs).sum((1, 2)) / areas, (masks * ys).sum((1, 2)) / areas
    size = float(max(h, w))
    translation = (float(cx[-1] - cx[0]) / size, float(cy[-1] - cy[0]) / size)
    zoom = 0.5 * math.log(float(areas[-1] / areas[0]))
    chain = np.unique(np.linspace(0, t - 1, min(t - 1, ROTATION_GAPS) + 1).round().astype(int))
    rotation = sum(_rotation_between(x[i], x[j], masks[i], masks[j]) for i, j in zip(chain[:-1], chain[1:]))
    return MotionEstimate(_decide(translation, zoom, rotation), translation, zoom, rotation)


def _decide(translation: Sequence[float], zoom: float, rotation: float) -> int:
    scores = {"translation": math.hypot(*translation) / TRANSLATION_UNIT,
              "zoom": abs(zoom) / ZOOM_UNIT, "rotation": abs(rotation) / ROTATION_UNIT}
    kind = max(scores, key=scores.get)
    if scores[kind] < 1.0:
        return CLASSES.index("stay still")
    if kind == "zoom":
        return CLASSES.index("zoom in" if zoom > 0 else "zoom out")
    if kind == "rotation":
        return CLASSES.index("rotate clockwise" if rotation > 0 else "rotate counterclockwise")
    dx, dy = translation
    direction = (int(math.copysign(1, dx)), 0) if abs(dx) >= abs(dy) else (0, int(math.copysign(1, dy)))
    return CLASSES.index(next(k for k, v in DIRECTIONS.items() if v == direction))


def classify(frames) -> int:
    """Class index (into synthetic.CLASSES) of a video, or UNKNOWN (-1)."""
    return estimate_motion(frames).label
