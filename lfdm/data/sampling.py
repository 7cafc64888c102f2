"""Which frames of a video make a stage-2 clip or a stage-1 pair (docs/reference.md §4, official semantics).

- ``uniform``: linspace(0, T-1, K) truncated to int (test sets).
- ``random``: the uniform indices, each inner one jittered within its neighbours' steps, sorted.
- ``very_random``: K sorted draws with replacement, index 0 forced (the paper's training clips).
Videos shorter than K are padded with their last frame (``uniform``/``random``).
"""
from __future__ import annotations

import numpy as np

from lfdm.config import CLIP_SAMPLING_MODES


def clip_indices(num_frames: int, k: int, mode: str, rng: np.random.Generator | None = None) -> np.ndarray:
    if num_frames < 1 or k < 1:
        raise ValueError(f"cannot sample {k} frames from a video of {num_frames} frames")
    if mode not in CLIP_SAMPLING_MODES:
        raise ValueError(f"unknown clip sampling {mode!r}; expected one of {CLIP_SAMPLING_MODES}")
    if mode != "uniform" and rng is None:
        raise ValueError(f"clip sampling {mode!r} needs a random generator")
    if mode == "very_random":
        idx = np.sort(rng.choice(num_frames, size=k, replace=True))
        idx[0] = 0
        return idx.astype(np.int64)
    if num_frames < k:
        return np.pad(np.arange(num_frames), (0, k - num_frames), mode="edge").astype(np.int64)
    idx = np.linspace(0, num_frames - 1, k).astype(np.int64)
    if mode == "random" and k > 2:
        steps = idx[1:] - idx[:-1]
        jittered = idx.copy()
        for i in range(1, k - 1):
            low, high = 1 - steps[i - 1], steps[i]
            if high > low:
                jittered[i] += rng.integers(low, high)
        idx = np.sort(jittered)
    return idx


def pair_indices(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A sorted random (source, driving) pair of one video; the two may coincide."""
    if num_frames < 1:
        raise ValueError("cannot sample a frame pair from an empty video")
    return np.sort(rng.choice(num_frames, size=2, replace=True)).astype(np.int64)
