"""Samplers as plain functions over ``denoiser(x_t, t) -> eps`` (k-diffusion style).

- ``ddpm``: ancestral sampling over all T steps with the posterior variance beta~_t (Ho et al. 2020, Eq. 6-7).
- ``ddim``: Song et al. 2021, Eq. 12, with eta, on "trailing" steps that start at t = T-1
  (the official code started at t = 909 and read abar one index off).
- ``dpmpp_2m``: DPM-Solver++(2M), data prediction, multistep, first order at the ends
  (Lu et al. 2022, Alg. 2), solving down to sigma = 0.
x0 predictions are dynamically thresholded (quantile 0.9) when ``threshold`` is set.
Randomness comes from ``noise(step_index)``: per-video generators, so a video does not depend on its batch.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from lfdm.diffusion.parameterisation import eps_from_x0, x0_from_eps
from lfdm.diffusion.schedule import Schedule
from lfdm.diffusion.thresholding import dynamic_threshold

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseFn = Callable[[int], torch.Tensor]
SAMPLERS = ("ddpm", "ddim", "dpmpp")


class PerVideoNoise:
    """Standard normal noise drawn per video from its own generator, in a fixed order."""

    def __init__(self, generators: Sequence[torch.Generator], shape: Sequence[int], device, dtype=torch.float32):
        self.generators, self.shape, self.device, self.dtype = list(generators), tuple(shape), device, dtype

    def __call__(self, _step: int = 0) -> torch.Tensor:
        return torch.stack([torch.randn(self.shape, generator=g, device=self.device, dtype=self.dtype)
                            for g in self.generators])


def trailing_timesteps(total: int, steps: int) -> List[int]:
    """``steps`` integer times from T-1 down, evenly spaced (e.g. 999, 899, ..., 99 for 10 of 1000)."""
    if not 1 <= steps <= total:
        raise ValueError(f"steps must be in 1..{total}, got {steps}")
    return (np.round(np.arange(total, 0, -total / steps)).astype(np.int64) - 1).tolist()


def _predict_x0(denoiser, x, t: int, schedule, threshold):
    tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    eps = denoiser(x, tt).to(x.dtype)
    abar = schedule.abar(tt).to(x.device)
    x0 = x0_from_eps(x, abar, eps)
    if threshold is not None:
        x0 = dynamic_threshold(x0, threshold)
        eps = eps_from_x0(x, abar, x0)
    return x0, eps, abar


def _scalar(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def ddpm(denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn,
         threshold: Optional[float] = 0.9) -> torch.Tensor:
    buffers = {k: v.to(x.device) for k, v in schedule.official_buffers().items()}
    for i, t in enumerate(reversed(range(schedule.timesteps))):
        x0, _, _ = _predict_x0(denoiser, x, t, schedule, threshold)
        mean = buffers["posterior_mean_coef1"][t] * x0 + buffers["posterior_mean_coef2"][t] * x
        if t > 0:
            x = mean + torch.exp(0.5 * buffers["posterior_log_variance_clipped"][t]) * noise(i)
        else:
            x = mean
    return x


@torch.no_grad()
def ddim(denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn, steps: int,
         eta: float = 0.0, threshold: Optional[float] = 0.9) -> torch.Tensor:
    times = trailing_timesteps(schedule.timesteps, steps)
    for i, t in enumerate(times):
        t_prev = times[i + 1] if i + 1 < len(times) else -1
        x0, eps, abar = _predict_x0(denoiser, x, t, schedule, threshold)
        abar_prev = schedule.abar(torch.tensor([t_prev])).to(x.device)
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
        x = _scalar(abar_prev.sqrt(), x) * x0 + _scalar((1 - abar_prev - sigma ** 2).clamp_min(0).sqrt(), x) * eps
        if eta > 0 and t_prev >= 0:
            x = x + _scalar(sigma, x) * noise(i)
    return x


@torch.no_grad()
def dpmpp_2m(denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, steps: int,
             threshold: Optional[float] = 0.9) -> torch.Tensor:
    times = trailing_timesteps(schedule.timesteps, steps)
    abar = lambda t: schedule.abar(torch.tensor([t])).double()  # noqa: E731
    lam = lambda a: 0.5 * (torch.log(a) - torch.log1p(-a))     # noqa: E731  log(alpha/sigma)
    previous, h_previous = None, None
    for i, t in enumerate(times):
        x0, _, _ = _predict_x0(denoiser, x, t, schedule, threshold)
        if i + 1 == len(times):           # last step solves to sigma = 0: the data prediction itself
            return x0
        s = times[i + 1]
        a_t, a_s = abar(t), abar(s)
        h = lam(a_s) - lam(a_t)
        if previous is None or i + 2 == len(times):
            d = x0
        else:
            r = h_previous / h
            d = (1 + 1 / (2 * r)).to(x.dtype).to(x.device) * x0 - (1 / (2 * r)).to(x.dtype).to(x.device) * previous
        sigma_ratio = ((1 - a_s) / (1 - a_t)).sqrt()
        coef = a_s.sqrt() * torch.expm1(-h)
        x = sigma_ratio.to(x.dtype).to(x.device) * x - coef.to(x.dtype).to(x.device) * d
        previous, h_previous = x0, h
    return x


def sample(name: str, denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn, *,
           steps: int, eta: float = 0.0, threshold: Optional[float] = 0.9) -> torch.Tensor:
    if name == "ddpm":
        if steps != schedule.timesteps:
            raise ValueError(f"ddpm runs all {schedule.timesteps} steps; use ddim or dpmpp for {steps}")
        return ddpm(denoiser, schedule, x, noise, threshold)
    if name == "ddim":
        return ddim(denoiser, schedule, x, noise, steps, eta, threshold)
    if name == "dpmpp":
        return dpmpp_2m(denoiser, schedule, x, steps, threshold)
    raise ValueError(f"unknown sampler {name!r}; expected one of {SAMPLERS}")
