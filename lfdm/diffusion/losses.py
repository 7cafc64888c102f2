"""Training loss (paper Eq. 7; Ho et al. 2020 Eq. 14): E_t,eps || eps - eps_theta(x_t, t) ||^2, t ~ U{0..T-1}."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lfdm.diffusion.parameterisation import q_sample
from lfdm.diffusion.schedule import Schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def eps_mse_loss(denoiser: Denoiser, x0: torch.Tensor, schedule: Schedule,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    b = x0.shape[0]
    t = torch.randint(0, schedule.timesteps, (b,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = q_sample(x0, schedule.abar(t).to(x0.device), noise)
    return F.mse_loss(denoiser(x_t, t).float(), noise.float())
