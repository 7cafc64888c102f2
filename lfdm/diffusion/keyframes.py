"""Stage 2 at a lower frame rate: the network generates every ``stride``-th frame of a clip (its keyframes, the
first and the last included), and the frames between are linear interpolations of the keyframes' flow and
occlusion (``diffusion.keyframe_stride``; 1, every frame, in the paper).

The video diffusion U-Net's convolutions cost linearly in the frames and its temporal attention quadratically, but
its optimiser, embeddings and per-call overheads do not shrink: demo64's training step at stride 5 (4 of 16 frames)
measured 0.4x on one thread and 0.5x in the demo's Ray Train run. It suits motions that are smooth at the scale of
s frames (the synthetic dataset's poses are linear in time, and a flow linear in time is restored exactly).
"""
from __future__ import annotations

import torch


def keyframe_count(num_frames: int, stride: int) -> int:
    """How many keyframes carry a clip of ``num_frames`` frames: frames 0, s, 2s, ..., num_frames - 1."""
    if stride < 1:
        raise ValueError(f"keyframe stride {stride}: must be >= 1")
    if num_frames < 1 or (num_frames - 1) % stride:
        raise ValueError(f"a clip of {num_frames} frames has no keyframes at stride {stride}: its last frame must be a "
                         f"keyframe, so num_frames - 1 must be a multiple of the stride "
                         f"(for example {((num_frames - 1) // stride) * stride + 1} or "
                         f"{((num_frames - 1) // stride + 1) * stride + 1} frames)")
    return (num_frames - 1) // stride + 1


def interpolate_keyframes(keyframes: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, C, n, h, w) keyframes -> (B, C, (n - 1) * stride + 1, h, w): frame j lies between keyframes
    j // s and j // s + 1, weighted linearly by its distance to each."""
    n = keyframes.shape[2]
    if stride == 1 or n == 1:                  # nothing lies between keyframes
        return keyframes
    frames = torch.arange((n - 1) * stride + 1, device=keyframes.device)
    lower = (frames // stride).clamp_max(n - 2)                                  # (K,) the keyframe at or before
    weight = ((frames - lower * stride).to(keyframes.dtype) / stride)[:, None, None]   # (K, 1, 1) in [0, 1]
    return keyframes[:, :, lower] * (1 - weight) + keyframes[:, :, lower + 1] * weight
