"""Dynamic thresholding (Imagen, Saharia et al. 2022, Sec. 2.3):
s = max(1, quantile_q(|x0_hat|)) per sample, x0_hat = clamp(x0_hat, -s, s) / s."""
from __future__ import annotations

import torch


def dynamic_threshold(x0: torch.Tensor, quantile: float = 0.9) -> torch.Tensor:
    flat = x0.reshape(x0.shape[0], -1).abs().float()
    s = torch.quantile(flat, quantile, dim=1).clamp_min(1.0).to(x0.dtype)
    s = s.view(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s
