"""Flow visualisation with the Middlebury colour wheel (Baker et al., IJCV 2011): hue = direction,
saturation = magnitude (normalised by the largest displacement shown)."""
from __future__ import annotations

import numpy as np

from lfdm.io.pixels import to_uint8

# Segment lengths of the wheel: red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta, magenta-red.
SEGMENTS = (15, 6, 4, 11, 13, 6)


def color_wheel() -> np.ndarray:
    """(55, 3) float in [0, 1]."""
    ramps = []
    for i, n in enumerate(SEGMENTS):
        up = np.arange(n) / n
        start = np.zeros((n, 3))
        channel, nxt = i // 2, (i // 2 + 1) % 3
        if i % 2 == 0:                    # the next primary fades in
            start[:, channel] = 1
            start[:, nxt] = up
        else:                             # the current primary fades out
            start[:, nxt] = 1
            start[:, channel] = 1 - up
        ramps.append(start)
    return np.concatenate(ramps)


def displacement_to_color(u: np.ndarray, v: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """Displacements (..., h, w) in pixels -> uint8 (..., h, w, 3)."""
    wheel = color_wheel()
    n = len(wheel)
    radius = np.hypot(u, v)
    scale = max_radius if max_radius else max(float(radius.max()), 1e-6)
    r = np.clip(radius / scale, 0, 1)
    angle = np.arctan2(-v, -u) / np.pi                    # (-1, 1]
    position = (angle + 1) / 2 * (n - 1)
    k0 = np.floor(position).astype(int) % n
    k1 = (k0 + 1) % n
    frac = (position - np.floor(position))[..., None]
    colour = (1 - frac) * wheel[k0] + frac * wheel[k1]
    colour = 1 - r[..., None] * (1 - colour)               # white at zero motion
    return to_uint8(colour)


def grid_displacement(flow: np.ndarray):
    """Absolute sampling grids (..., h, w, 2) in [-1, 1] -> displacements (u, v), each (..., h, w), in flow pixels."""
    h, w = flow.shape[-3:-1]
    xs = np.linspace(-1, 1, w)[None, :]
    ys = np.linspace(-1, 1, h)[:, None]
    return (flow[..., 0] - xs) * (w - 1) / 2, (flow[..., 1] - ys) * (h - 1) / 2


def robust_flow_scale(flow: np.ndarray, percentile: float = 99.0) -> float:
    """The displacement (flow pixels) that saturates the colour wheel for a whole video: a high percentile over
    all its pixels and frames, so one stray vector at a border does not leave every real motion near white."""
    u, v = grid_displacement(flow)
    return max(float(np.percentile(np.hypot(u, v), percentile)), 1e-3)


def grid_flow_to_color(flow: np.ndarray, max_radius: float | None = None) -> np.ndarray:
    """Absolute sampling grids (..., h, w, 2) in [-1, 1] -> colour of the displacement in pixels."""
    return displacement_to_color(*grid_displacement(flow), max_radius)
