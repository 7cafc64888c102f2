"""Writers of generated videos: mp4, gif, and the official-style strip
(input | generated | flow in the Middlebury colour wheel | occlusion), animated over frames."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lfdm.io.flow_vis import grid_flow_to_color
from lfdm.io.video import encode_video


def frames_uint8(frames: torch.Tensor) -> np.ndarray:
    """(3, K, H, W) in [0, 1] -> (K, H, W, 3) uint8."""
    return (frames.detach().float().clamp(0, 1).permute(1, 2, 3, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def strip_frames(source: torch.Tensor, frames: torch.Tensor, flows: torch.Tensor,
                 occlusions: torch.Tensor) -> np.ndarray:
    """source (3, H, W), frames (3, K, H, W), flows (K, h, w, 2), occlusions (1, K, h, w) -> (K, H, 4W, 3)."""
    k, size = frames.shape[1], frames.shape[-1]
    video = frames_uint8(frames)
    src = np.repeat(frames_uint8(source[:, None]), k, axis=0)
    colour = torch.from_numpy(grid_flow_to_color(flows.float().cpu().numpy(), max_radius=None)).permute(0, 3, 1, 2)
    colour = F.interpolate(colour.float(), size=(size, size), mode="nearest").byte().permute(0, 2, 3, 1).numpy()
    occ = F.interpolate(occlusions.float().cpu().permute(1, 0, 2, 3), size=(size, size), mode="bilinear",
                        align_corners=False).clamp(0, 1)
    occ = (occ.repeat(1, 3, 1, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return np.concatenate([src, video, colour, occ], axis=2)


def encode(frames: np.ndarray, fmt: str, fps: float) -> bytes:
    if fmt not in ("mp4", "gif"):
        raise ValueError(f"unknown video format {fmt!r}: use mp4 or gif")
    return encode_video(frames, fps=fps, fmt=fmt)
