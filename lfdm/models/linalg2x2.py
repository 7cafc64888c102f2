"""Closed-form 2x2 linear algebra, batched on any device (no CPU round trip, no LAPACK call)."""
from __future__ import annotations

import torch


def inverse2x2(m: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) -> inverse via the adjugate."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    adj = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return adj / det[..., None, None]


def symmetric_eig2x2(cov: torch.Tensor, eps: float = 1e-12, min_eigenvalue: float = 1e-6):
    """Eigen-decomposition of symmetric PSD (..., 2, 2): (U, S) with cov = U diag(S) U^T, S descending.

    Columns of U follow the convention of LAPACK's SVD of a symmetric PSD 2x2 matrix (what the
    official code ran on the CPU): det(U) = -1, i.e. u2 = (u1_y, -u1_x). The global sign of U is
    chosen so u1_x <= 0; a global flip is immaterial downstream (``revert_axis_swap``).
    Degenerate inputs keep finite gradients: eigenvalues are clamped at ``min_eigenvalue`` (a region
    collapsed onto one pixel; real regions spread far more) and an isotropic covariance, whose axis
    is arbitrary, takes the x axis without differentiating atan2 at the origin.
    """
    a, b, c = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    mean, half_diff = (a + c) / 2, (a - c) / 2
    radius = torch.sqrt(half_diff ** 2 + b ** 2 + eps ** 2)
    isotropic = (2 * b).abs() + (a - c).abs() < eps
    x = torch.where(isotropic, torch.ones_like(a), a - c)
    y = torch.where(isotropic, torch.zeros_like(b), 2 * b)
    phi = 0.5 * torch.atan2(y, x)                   # principal axis angle, cos(phi) >= 0
    u1x, u1y = -torch.cos(phi), -torch.sin(phi)
    u = torch.stack([torch.stack([u1x, u1y], -1), torch.stack([u1y, -u1x], -1)], -2)  # rows of U
    s = torch.stack([mean + radius, mean - radius], -1).clamp_min(min_eigenvalue)
    return u, s
