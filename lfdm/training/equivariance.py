"""Equivariance constraints of the region predictor (MRAA, Siarohin et al. 2021, Sec. 3.3).

A random transform T = affine (sigma 0.05) + thin-plate spline (5x5 control points, sigma 0.005)
warps the driving frame (optionally turned by a uniform random angle up to ``rotation`` radians, so the
regions learn to turn with the image, not only to shift with it); regions predicted on the warped frame, mapped back through T, must match:
  shift:  10 * |mu - T(mu')|
  affine: 10 * |I - inv(A) J_T(mu') A'|   (sign-corrected like the sparse motions)
The TPS kernel is U(r) = r^2 log r with the Euclidean r (the official code used the L1 distance,
marked "TODO this part may have bugs").
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from lfdm.models.linalg2x2 import inverse2x2
from lfdm.models.warp import coordinate_grid


class RandomTPS:
    def __init__(self, batch: int, sigma_affine: float, sigma_tps: float, points_tps: int,
                 generator: torch.Generator | None = None, device=None, rotation: float = 0.0,
                 log_scale: float = 0.0):
        gen_device = generator.device if generator is not None else None
        noise = torch.randn(batch, 2, 3, generator=generator, device=gen_device) * sigma_affine
        self.theta = (noise.to(device) + torch.eye(2, 3, device=device))                       # (B, 2, 3)
        if rotation:   # drawn only when asked for, so the paper's random stream is unchanged
            angle = (torch.rand(batch, generator=generator, device=gen_device) * 2 - 1).to(device) * rotation
            cos, sin = torch.cos(angle), torch.sin(angle)
            turn = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
            self.theta = torch.cat([turn @ self.theta[:, :, :2], self.theta[:, :, 2:]], dim=-1)
        if log_scale:  # likewise drawn only when asked for; scales the linear part, like the turn
            zoom = torch.exp((torch.rand(batch, generator=generator, device=gen_device) * 2 - 1) * log_scale).to(device)
            self.theta = torch.cat([zoom[:, None, None] * self.theta[:, :, :2], self.theta[:, :, 2:]], dim=-1)
        self.control_points = coordinate_grid(points_tps, points_tps, device).view(-1, 2)     # (P, 2)
        self.control_params = (torch.randn(batch, 1, points_tps ** 2, generator=generator, device=gen_device)
                               * sigma_tps).to(device)

    def warp_coordinates(self, coords: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) -> (B, N, 2)."""
        theta = self.theta.to(coords.dtype)
        out = torch.einsum("bij,bnj->bni", theta[:, :, :2], coords) + theta[:, None, :, 2]
        r = torch.linalg.vector_norm(coords[:, :, None, :] - self.control_points.to(coords.dtype), dim=-1)
        kernel = r ** 2 * torch.log(r + 1e-6)                                   # (B, N, P)
        return out + (kernel * self.control_params.to(coords.dtype)).sum(-1, keepdim=True)

    def jacobian(self, coords: torch.Tensor) -> torch.Tensor:
        """d T(p) / d p at coords (B, N, 2) -> (B, N, 2, 2), differentiable w.r.t. coords."""
        with torch.enable_grad():
            coords = coords if coords.requires_grad else coords.detach().requires_grad_(True)
            out = self.warp_coordinates(coords)
            gx = torch.autograd.grad(out[..., 0].sum(), coords, create_graph=True)[0]
            gy = torch.autograd.grad(out[..., 1].sum(), coords, create_graph=True)[0]
        return torch.stack([gx, gy], dim=-2)

    def transform_frame(self, frame: torch.Tensor, align_corners: bool) -> torch.Tensor:
        b, _, h, w = frame.shape
        grid = coordinate_grid(h, w, frame.device, frame.dtype).view(1, -1, 2).expand(b, -1, -1)
        grid = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(frame, grid, padding_mode="reflection", align_corners=align_corners)


def equivariance_losses(driving_regions: Dict, transformed_regions: Dict, transform: RandomTPS,
                        revert_axis_swap: bool) -> Dict[str, torch.Tensor]:
    mu, mu_t = driving_regions["shift"], transformed_regions["shift"]
    shift = (mu - transform.warp_coordinates(mu_t)).abs().mean()
    mapped = transform.jacobian(mu_t) @ transformed_regions["affine"]
    value = inverse2x2(driving_regions["affine"]) @ mapped
    if revert_axis_swap:
        value = value * torch.sign(value[:, :, 0:1, 0:1])
    eye = torch.eye(2, device=value.device, dtype=value.dtype)
    return {"equivariance_shift": shift, "equivariance_affine": (eye - value).abs().mean()}
