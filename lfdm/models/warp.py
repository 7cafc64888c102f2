"""The one warping function and its coordinate conventions.

A flow here is an absolute backward sampling grid (B, h, w, 2) in [-1, 1], channel order (x, y):
output pixel p takes the input value at flow[p]. Grids are always built with
x = 2i/(w-1) - 1 (align-corners semantics). Whether ``grid_sample``/``interpolate`` read them with
align_corners=True (exact identity; our models) or False (the official weights' convention) is the
explicit ``align_corners`` argument.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def coordinate_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h, w, 2) grid of (x, y) in [-1, 1]."""
    x = 2 * torch.arange(w, device=device, dtype=dtype) / max(w - 1, 1) - 1
    y = 2 * torch.arange(h, device=device, dtype=dtype) / max(h - 1, 1) - 1
    return torch.stack([x.view(1, w).expand(h, w), y.view(h, 1).expand(h, w)], dim=-1)


def resize_flow(flow: torch.Tensor, size, align_corners: bool) -> torch.Tensor:
    """(B, h, w, 2) -> (B, H, W, 2) by bilinear interpolation of the grid."""
    if tuple(flow.shape[1:3]) == tuple(size):
        return flow
    out = F.interpolate(flow.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=align_corners)
    return out.permute(0, 2, 3, 1)


def resize_map(x: torch.Tensor, size, align_corners: bool) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, H, W) bilinear (occlusion maps)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def warp(x: torch.Tensor, flow: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Backward-warp x (B, C, H, W) by flow (B, h, w, 2), resized to x's resolution if needed.

    The grid is sampled in float32 even under autocast: sub-pixel positions need the precision.
    """
    flow = resize_flow(flow, x.shape[2:], align_corners)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = F.grid_sample(x.float(), flow.float(), mode="bilinear", padding_mode="zeros",
                            align_corners=align_corners)
    return out.to(x.dtype)
