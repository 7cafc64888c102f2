"""Training loss (paper Eq. 7; Ho et al. 2020 Eq. 14): E_t,eps w_t || eps - eps_theta(x_t, t) ||^2, t ~ U{0..T-1}.

w_t = 1 is the paper's loss. ``min_snr_gamma`` gives w_t = min(SNR_t, gamma) / SNR_t with
SNR_t = abar_t / (1 - abar_t) (Hang et al. 2023, Eq. 9 for eps-prediction; min(SNR_t, gamma) on the x0
loss for x0-prediction): the minimiser is the same, but the nearly noise-free steps stop dominating.
"""
from __future__ import annotations

from typing import Callable

import torch

from lfdm.diffusion.parameterisation import q_sample
from lfdm.diffusion.schedule import Schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def eps_mse_loss(denoiser: Denoiser, x0: torch.Tensor, schedule: Schedule,
                 generator: torch.Generator | None = None, min_snr_gamma: float | None = None,
                 prediction: str = "eps") -> torch.Tensor:
    """``prediction="x0"``: the network outputs x0 and the loss is ||x0 - x0_theta||^2 (= SNR-weighted eps-MSE)."""
    b = x0.shape[0]
    t = torch.randint(0, schedule.timesteps, (b,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    abar = schedule.abar(t).to(x0.device)
    x_t = q_sample(x0, abar, noise)
    target = noise if prediction == "eps" else x0
    per_sample = (denoiser(x_t, t).float() - target.float()).pow(2).flatten(1).mean(1)     # (B,)
    if min_snr_gamma is None:
        return per_sample.mean()
    snr = abar / (1 - abar)
    weight = snr.clamp(max=min_snr_gamma) / (snr if prediction == "eps" else 1.0)
    return (per_sample * weight.float()).mean()
