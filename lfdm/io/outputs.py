"""Writers of generated videos: mp4, gif, npz (frames + flows + occlusions), and the official-style strip
(input | generated | flow in the Middlebury colour wheel | occlusion), animated over frames."""
from __future__ import annotations

import io
import json
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from lfdm.io.flow_vis import grid_flow_to_color, robust_flow_scale
from lfdm.io.pixels import to_uint8
from lfdm.io.video import encode_video


def frames_uint8(frames: torch.Tensor) -> np.ndarray:
    """(3, K, H, W) in [0, 1] -> (K, H, W, 3) uint8."""
    return to_uint8(frames.permute(1, 2, 3, 0))


def flow_frames(flows, size: int, max_radius: float | None = None) -> np.ndarray:
    """flows (K, h, w, 2) sampling grids -> (K, size, size, 3) uint8 in the Middlebury colour wheel (nearest),
    saturating at ``max_radius`` flow pixels (default: the video's robust_flow_scale)."""
    flows = np.asarray(_numpy(flows), np.float32)
    colour = torch.from_numpy(grid_flow_to_color(flows, max_radius=max_radius or robust_flow_scale(flows)))
    colour = F.interpolate(colour.permute(0, 3, 1, 2).float(), size=(size, size), mode="nearest")
    return colour.byte().permute(0, 2, 3, 1).numpy()


def occlusion_frames(occlusions, size: int) -> np.ndarray:
    """occlusions (K, h, w) in [0, 1] (1 = visible) -> (K, size, size, 3) uint8 grey (bilinear)."""
    occ = torch.as_tensor(np.asarray(_numpy(occlusions), np.float32))[:, None]
    occ = F.interpolate(occ, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return to_uint8(occ.repeat(1, 3, 1, 1).permute(0, 2, 3, 1))


def strip_frames(source: torch.Tensor, frames: torch.Tensor, flows: torch.Tensor,
                 occlusions: torch.Tensor, max_radius: float | None = None) -> np.ndarray:
    """source (3, H, W), frames (3, K, H, W), flows (K, h, w, 2), occlusions (1, K, h, w) -> (K, H, 4W, 3)."""
    k, size = frames.shape[1], frames.shape[-1]
    video = frames_uint8(frames)
    src = np.repeat(frames_uint8(source[:, None]), k, axis=0)
    return np.concatenate([src, video, flow_frames(flows, size, max_radius), occlusion_frames(occlusions[0], size)], axis=2)


def encode(frames: np.ndarray, fmt: str, fps: float) -> bytes:
    if fmt not in ("mp4", "gif"):
        raise ValueError(f"unknown video format {fmt!r}: use mp4 or gif")
    return encode_video(frames, fps=fps, fmt=fmt)


def npz_bytes(frames: np.ndarray, flows, occlusions, metadata: Optional[dict] = None) -> bytes:
    """One video as .npz: frames (K, H, W, 3) uint8, flows (K, h, w, 2) sampling grids, occlusions (K, h, w)
    in [0, 1] (1 = visible), and optional JSON metadata."""
    arrays = {"frames": frames, "flows": np.asarray(_numpy(flows), np.float32),
              "occlusions": np.asarray(_numpy(occlusions), np.float32)}
    if metadata is not None:
        arrays["metadata"] = np.array(json.dumps(metadata))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _numpy(x):
    return x.detach().float().cpu().numpy() if torch.is_tensor(x) else x
