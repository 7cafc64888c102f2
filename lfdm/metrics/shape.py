"""Shape preservation of a moving object: does the object of frame t have the source frame's shape?

The classifier of motion only asks where the object went; a generated object that smears into a blob, leaves a
ghost where it started or collapses into a cross still "moves right". Here each frame's object mask is compared
with the source frame's after removing the motion itself: the source mask is moved to the frame's centroid,
scaled by the square root of the area ratio and turned by the best of ``angles`` rotations, and

    shape IoU_t = max over turns of |M_t ∩ S(M_0)| / |M_t ∪ S(M_0)|       (1 = the same shape, moved)
    area drift_t = |log(|M_t| / |M_0|)|                                    (0 = the same size)

A ghost or a smear adds pixels the moved source does not cover; a collapse removes pixels it does. Area drift is
meaningful for motions that keep the size (translations, turns, stillness), not for zooms.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from scipy import ndimage


def object_mask(frame: np.ndarray, min_chroma: float = 0.12) -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> (H, W) bool: coloured pixels, holes filled, the largest component.

    For scenes of a saturated object on a grey background (the synthetic dataset: chroma < 0.05 off the object,
    > 0.5 on most of it); the holes a texture's grey-ish blends leave are filled."""
    rgb = frame.astype(np.float32) / (255.0 if frame.dtype == np.uint8 else 1.0)
    mask = ndimage.binary_fill_holes(rgb.max(-1) - rgb.min(-1) > min_chroma)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, range(1, count + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return mask


def moved_mask(source: np.ndarray, centre: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """``source`` (H, W) bool, its centroid moved to ``centre`` (y, x), scaled by ``scale``, turned by ``angle``."""
    c0 = np.array(ndimage.center_of_mass(source))
    cos, sin = np.cos(angle), np.sin(angle)
    inverse = np.array([[cos, sin], [-sin, cos]]) / scale            # output (y, x) -> source (y, x)
    offset = c0 - inverse @ centre
    return ndimage.affine_transform(source.astype(np.float32), inverse, offset=offset, order=1) > 0.5


def compare_shapes(source: np.ndarray, frame: np.ndarray, angles: int = 36) -> Optional[Dict[str, float]]:
    """Shape IoU and area drift of mask ``frame`` against mask ``source`` (both (H, W) bool); None when either is
    empty (no object to compare)."""
    a0, at = int(source.sum()), int(frame.sum())
    if a0 == 0 or at == 0:
        return None
    centre, scale = np.array(ndimage.center_of_mass(frame)), float(np.sqrt(at / a0))
    best = 0.0
    for angle in np.linspace(0, 2 * np.pi, angles, endpoint=False):
        moved = moved_mask(source, centre, scale, angle)
        union = np.logical_or(moved, frame).sum()
        best = max(best, float(np.logical_and(moved, frame).sum() / union) if union else 0.0)
    return {"shape_iou": best, "area_drift": float(abs(np.log(at / a0)))}


def video_shape(video: np.ndarray, source_frame: np.ndarray, frames=(0.25, 0.5, 0.75, 1.0)) -> Optional[dict]:
    """Mean shape IoU and area drift of ``video`` (T, H, W, 3) at the given fractions of its length against
    ``source_frame`` (H, W, 3); None when the source has no object."""
    source = object_mask(source_frame)
    if not source.any():
        return None
    t_max = video.shape[0] - 1
    scores = [compare_shapes(source, object_mask(video[round(f * t_max)])) for f in frames]
    lost = sum(s is None for s in scores)                       # the object vanished: no shape kept at all
    kept = [s for s in scores if s is not None]
    iou = (sum(s["shape_iou"] for s in kept)) / len(scores)
    drift = float(np.mean([s["area_drift"] for s in kept])) if kept else None
    return {"shape_iou": iou, "area_drift": drift, "frames_without_object": lost}
