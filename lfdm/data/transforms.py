"""Frame transforms: crop, aspect-preserving letterbox with area interpolation, flips, colour jitter.

Random transforms draw from an explicit ``numpy.random.Generator`` so results are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch


def crop(frames: np.ndarray, box: Optional[Sequence[int]]) -> np.ndarray:
    """frames (T, H, W, C); box = (y0, y1, x0, x1) or None."""
    if box is None:
        return frames
    y0, y1, x0, x1 = box
    if not (0 <= y0 < y1 <= frames.shape[1] and 0 <= x0 < x1 <= frames.shape[2]):
        raise ValueError(f"crop box {tuple(box)} does not fit frames of size {frames.shape[1:3]}")
    return frames[:, y0:y1, x0:x1]


@lru_cache(maxsize=64)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of box-filter (pixel-area) resampling along one axis."""
    scale = n_in / n_out
    start = np.arange(n_out)[:, None] * scale
    end = start + scale
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(end, j + 1) - np.maximum(start, j), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_area(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """frames (T, H, W, C) float -> (T, height, width, C) by pixel-area averaging."""
    rows = area_matrix(frames.shape[1], height)
    cols = area_matrix(frames.shape[2], width)
    return np.einsum("yh,thwc,xw->tyxc", rows, frames.astype(np.float32), cols, optimize=True)


def letterbox(frames: np.ndarray, size: int) -> np.ndarray:
    """Scale the longer side to ``size`` (area interpolation) and pad black symmetrically.

    frames (T, H, W, 3) uint8 or float in [0, 255] -> float32 (T, size, size, 3) in [0, 1].
    """
    _, h, w, _ = frames.shape
    ratio = size / max(h, w)
    new_h, new_w = max(1, int(h * ratio)), max(1, int(w * ratio))
    resized = resize_area(frames, new_h, new_w) / 255.0
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out = np.zeros((frames.shape[0], size, size, frames.shape[3]), np.float32)
    out[:, top:top + new_h, left:left + new_w] = resized
    return out


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, C) float in [0, 1] -> torch (T, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


# ----------------------------------------------------------------------------- colour jitter
@dataclass(frozen=True)
class JitterFactors:
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0

    @staticmethod
    def draw(rng: np.random.Generator, brightness: float, contrast: float, saturation: float,
             hue: float) -> "JitterFactors":
        def around_one(amount: float) -> float:
            return float(rng.uniform(max(0.0, 1 - amount), 1 + amount)) if amount > 0 else 1.0
        return JitterFactors(around_one(brightness), around_one(contrast), around_one(saturation),
                             float(rng.uniform(-hue, hue)) if hue > 0 else 0.0)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * a + (1 - factor) * b).clamp(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(-3)
    minc, _ = x.min(-3)
    delta = maxc - minc
    v = maxc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, v], -3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = [torch.zeros_like(v) for _ in range(3)]
    for k, triple in enumerate(choices):
        mask = i == k
        for c in range(3):
            out[c] = torch.where(mask, triple[c], out[c])
    return torch.stack(out, -3)


def color_jitter(x: torch.Tensor, f: JitterFactors) -> torch.Tensor:
    """Brightness, contrast, saturation, hue (in that order, as the official loaders) on (..., 3, H, W)."""
    if f.brightness != 1.0:
        x = (x * f.brightness).clamp(0, 1)
    if f.contrast != 1.0:
        mean = _grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
        x = _blend(x, mean, f.contrast)
    if f.saturation != 1.0:
        x = _blend(x, _grayscale(x), f.saturation)
    if f.hue != 0.0:
        hsv = rgb_to_hsv(x)
        hsv = torch.stack([(hsv[..., 0, :, :] + f.hue) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]], -3)
        x = hsv_to_rgb(hsv)
    return x
