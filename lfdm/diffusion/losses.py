"""Training loss (paper Eq. 7; Ho et al. 2020 Eq. 14): E_t,eps w_t || x0 - x0_theta(x_t, t) ||^2, t ~ U{0..T-1}.

x0_theta comes from the network through ``Prediction`` (the wrapper the samplers use too). With the default
weights this is the paper's eps-MSE for an eps-network and the plain x0-MSE for an x0-network; ``min_snr_gamma``
gives min(SNR_t, gamma) (Hang et al. 2023): the same minimiser, but the nearly noise-free steps stop dominating.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from lfdm.diffusion.parameterisation import Prediction, q_sample

Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def diffusion_loss(network: Network, x0: torch.Tensor, prediction: Prediction,
                   generator: Optional[torch.Generator] = None, min_snr_gamma: Optional[float] = None,
                   sample_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``sample_weights`` (B,): a weight per clip (for instance its class's), on top of the time step's."""
    b = x0.shape[0]
    schedule = prediction.schedule
    t = torch.randint(0, schedule.timesteps, (b,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    abar = schedule.abar(t).to(x0.device)
    x_t = q_sample(x0, abar, noise)
    x0_hat = prediction.x0(network(x_t, t).float(), x_t.float(), t)
    per_sample = (x0_hat - x0.float()).pow(2).flatten(1).mean(1)                        # (B,)
    per_sample = per_sample * prediction.x0_loss_weight(abar, min_snr_gamma).float()
    return (per_sample if sample_weights is None else per_sample * sample_weights.float()).mean()
