"""The stage-2 diffusion target: a clip's latent flows and occlusions as one volume, and back (paper Sec. 3.2).

x0 = cat(scale * flow [- identity], 2 * occlusion - 1) over channels: (B, 3, K, h, w). The flow is the
absolute backward sampling grid (the paper and the released weights), or the residual grid - identity
(the official code's use_residual_flow option); ``scale`` is diffusion.flow_scale.
"""
from __future__ import annotations

import torch

from lfdm.models.warp import coordinate_grid


def flow_to_target(flow: torch.Tensor, occlusion: torch.Tensor, residual: bool, scale: float = 1.0) -> torch.Tensor:
    """Stage-2 diffusion target x0 = cat(scale * (flow [- identity]), 2 * occlusion - 1).

    flow (B, K, h, w, 2), occlusion (B, K, h, w) -> (B, 3, K, h, w).
    """
    if residual:
        flow = flow - coordinate_grid(flow.shape[-3], flow.shape[-2], flow.device, flow.dtype)
    return torch.cat([scale * flow.permute(0, 4, 1, 2, 3), (2 * occlusion - 1).unsqueeze(1)], dim=1)


def target_to_flow(x0: torch.Tensor, residual: bool, scale: float = 1.0):
    """Inverse of ``flow_to_target``: x0 (B, 3, K, h, w) -> flow (B, K, h, w, 2), occlusion (B, 1, K, h, w)."""
    flow = x0[:, :2].permute(0, 2, 3, 4, 1) / scale
    if residual:
        flow = flow + coordinate_grid(flow.shape[-3], flow.shape[-2], flow.device, flow.dtype)
    return flow.contiguous(), ((x0[:, 2:3] + 1) / 2).clamp(0, 1)
