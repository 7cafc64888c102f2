"""MRAA region predictor: K soft region heatmaps and, per region, a shift and a PCA affine.

heatmap H_k = softmax over space of conv(hourglass(x 1/4)) / temperature
shift  mu_k = sum_p H_k(p) p;   covariance Sigma_k = sum_p H_k(p) (p - mu_k)(p - mu_k)^T (+ 1e-6 I)
affine A_k  = U_k diag(sqrt(S_k)) with Sigma_k = U_k S_k U_k^T  (MRAA, Siarohin et al. 2021, Sec. 3.2)

U is defined up to the sign of each column; two conventions (``region.pca``):
- "closed_form" (our training): a closed-form 2x2 eigendecomposition on the device, det(U) = -1 and u1_x <= 0,
  a deterministic function of Sigma (linalg2x2.symmetric_eig2x2).
- "lapack" (imported official weights): LAPACK's SVD on the CPU, as the official code ran it. Its column signs
  follow the path of LAPACK's iterations, with no closed form (measured on 20,000 random covariances: it
  agrees with "closed_form" on 91 %), so the only way to give an official model the official affines is to
  run the same routine. The dense flow does not depend on the signs (it uses A_src A_drv^-1 after
  ``revert_axis_swap``); the affines themselves, and what consumes them, do.

Either way a region's axis is known only up to its sign, so A_src A_drv^-1 can express turns of at most
+-90 deg: a 110 deg turn reads as a 70 deg turn the other way. ``region.orientation = "skew"`` points u1
towards the heatmap's heavier tail (positive third moment along the axis) and makes U a proper rotation
[u1, R(90 deg) u1]; for any heatmap that is not point-symmetric the affine then turns with the region
through +-180 deg (with ``revert_axis_swap`` off, which would fold it back).

Any covariance-based affine stands still for a region whose covariance is isotropic: a star, an equilateral triangle
or a cross turns without changing its second moments. ``region.affine = "regressed"`` (FOMM, Siarohin et al.
2019) replaces the affine by a 2x2 matrix a conv head predicts at every pixel, pooled by the region's heatmap and
started at the identity; only the equivariance loss trains it. Shift and covariance stay the heatmap's.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from lfdm.config import AutoencoderConfig
from lfdm.models.blocks import Hourglass, downsample
from lfdm.models.linalg2x2 import symmetric_eig2x2
from lfdm.models.warp import coordinate_grid


COVARIANCE_FLOOR = 1e-6


def region_params(heatmap: torch.Tensor, pca: str = "closed_form", orientation: str = "axis") -> Dict[str, torch.Tensor]:
    """heatmap (B, K, h, w), summing to 1 over space -> shift (B, K, 2), covar (B, K, 2, 2), affine."""
    _, _, h, w = heatmap.shape
    grid = coordinate_grid(h, w, heatmap.device, heatmap.dtype)             # (h, w, 2)
    weights = heatmap.unsqueeze(-1)                                          # (B, K, h, w, 1)
    shift = (weights * grid).sum(dim=(2, 3))                                 # (B, K, 2)
    centred = grid - shift[:, :, None, None, :]                              # (B, K, h, w, 2)
    covar = torch.einsum("bkhwi,bkhwj->bkij", centred * weights, centred)    # (B, K, 2, 2)
    # A heatmap collapsed onto one pixel has a singular covariance, whose inverse (Gaussian heatmaps)
    # and square root (affine) have no finite gradient; 1e-6 is far below any real region's spread.
    covar = covar + COVARIANCE_FLOOR * torch.eye(2, device=covar.device, dtype=covar.dtype)
    if pca == "lapack":
        u, s, _ = torch.linalg.svd(covar.cpu())
        u, s = u.to(covar.device), s.to(covar.device)
    else:
        u, s = symmetric_eig2x2(covar)
    if orientation == "skew":
        u = orient_by_skew(u, centred, heatmap)
    affine = u * s.sqrt().unsqueeze(-2)                                      # U diag(sqrt S)
    return {"shift": shift, "covar": covar, "affine": affine, "heatmap": heatmap}


def orient_by_skew(u: torch.Tensor, centred: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
    """(B, K, 2, 2) axes (columns), (B, K, h, w, 2) offsets from the mean, (B, K, h, w) -> proper rotations."""
    u1 = u[..., :, 0]                                                        # (B, K, 2)
    along = (centred * u1[:, :, None, None, :]).sum(-1)                      # (B, K, h, w)
    skew = (heatmap * along ** 3).sum(dim=(2, 3))                            # (B, K)
    sign = torch.where(skew < 0, -1.0, 1.0).to(u.dtype)
    cos, sin = sign * u1[..., 0], sign * u1[..., 1]
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


class RegionPredictor(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        r = cfg.region
        self.predictor = Hourglass(r.block_expansion, cfg.num_channels, r.num_blocks, r.max_features)
        self.regions = nn.Conv2d(self.predictor.out_filters, cfg.num_regions, kernel_size=7, padding=r.pad)
        self.down = downsample(cfg.num_channels, r.scale_factor)
        self.temperature = r.temperature
        self.pca, self.orientation = r.pca, r.orientation
        self.jacobian = None
        if r.affine == "regressed":
            # 4 channels per region, a 2x2 matrix at each pixel; started at the identity (FOMM's initialisation)
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * cfg.num_regions, kernel_size=7, padding=r.pad)
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(cfg.num_regions))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.predictor(self.down(x))
        logits = self.regions(features)                                      # (B, K, h, w)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.float().view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        params = region_params(heatmap, self.pca, self.orientation)
        if self.jacobian is not None:
            matrices = self.jacobian(features).float().view(b, k, 4, h, w)
            params["affine"] = (matrices * heatmap.unsqueeze(2)).sum(dim=(-2, -1)).view(b, k, 2, 2)
        return params
