"""Samplers as plain functions over ``denoiser(x_t, t) -> eps`` (k-diffusion style), one registry.

- ``ddpm``: ancestral sampling over all T steps with the posterior variance beta~_t (Ho et al. 2020, Eq. 6-7).
- ``ddim``: Song et al. 2021, Eq. 12, with eta, on "trailing" steps that start at t = T-1
  (the official code started at t = 909 and read abar one index off).
- ``dpmpp``: DPM-Solver++(2M), data prediction, multistep, first order at the ends
  (Lu et al. 2022, Alg. 2), solving down to sigma = 0.
Every sampler has one signature: ``fn(denoiser, schedule, x, noise, *, steps, eta, threshold, callback)``.
x0 predictions are dynamically thresholded (quantile 0.9) when ``threshold`` is set.
Randomness comes from ``noise(step_index)``: per-video generators, so a video does not depend on its batch.
``callback(i, total)`` runs after step i (progress reports); it sees no tensor, so it cannot change a result.
Every coefficient is computed on the device before the loop: no host-device traffic per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from lfdm.diffusion.parameterisation import eps_from_x0, x0_from_eps
from lfdm.diffusion.schedule import Schedule
from lfdm.diffusion.thresholding import dynamic_threshold

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseFn = Callable[[int], torch.Tensor]
Callback = Optional[Callable[[int, int], None]]


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
    abar = schedule.abar(tt)
    x0 = x0_from_eps(x, abar, eps)
    if threshold is not None:
        x0 = dynamic_threshold(x0, threshold)
        eps = eps_from_x0(x, abar, x0)
    return x0, eps, abar


def _report(callback: Callback, i: int, total: int) -> None:
    if callback is not None:
        callback(i, total)


@torch.no_grad()
def ddpm(denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn, *, steps: int,
         eta: float = 0.0, threshold: Optional[float] = 0.9, callback: Callback = None) -> torch.Tensor:
    buffers = {k: v.to(x.device) for k, v in schedule.official_buffers().items()}
    for i, t in enumerate(reversed(range(schedule.timesteps))):
        x0, _, _ = _predict_x0(denoiser, x, t, schedule, threshold)
        mean = buffers["posterior_mean_coef1"][t] * x0 + buffers["posterior_mean_coef2"][t] * x
        if t > 0:
            x = mean + torch.exp(0.5 * buffers["posterior_log_variance_clipped"][t]) * noise(i)
        else:
            x = mean
        _report(callback, i, steps)
    return x


@torch.no_grad()
def ddim(denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn, *, steps: int,
         eta: float = 0.0, threshold: Optional[float] = 0.9, callback: Callback = None) -> torch.Tensor:
    times = trailing_timesteps(schedule.timesteps, steps)
    table = schedule.padded_abar(x.device)
    prev = table[torch.tensor(times[1:] + [-1], device=x.device) + 1]            # abar of the next time
    now = table[torch.tensor(times, device=x.device) + 1]
    sigma = eta * ((1 - prev) / (1 - now) * (1 - now / prev)).sqrt()
    keep = (1 - prev - sigma ** 2).clamp_min(0).sqrt()
    coef = [tuple(c.to(x.dtype) for c in row) for row in zip(prev.sqrt(), keep, sigma)]
    for i, t in enumerate(times):
        x0, eps, _ = _predict_x0(denoiser, x, t, schedule, threshold)
        c_x0, c_eps, c_noise = coef[i]
        x = c_x0 * x0 + c_eps * eps
        if eta > 0 and i + 1 < len(times):
            x = x + c_noise * noise(i)
        _report(callback, i, steps)
    return x


@torch.no_grad()
def dpmpp_2m(denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn, *, steps: int,
             eta: float = 0.0, threshold: Optional[float] = 0.9, callback: Callback = None) -> torch.Tensor:
    times = trailing_timesteps(schedule.timesteps, steps)
    a = schedule.padded_abar(x.device)[torch.tensor(times, device=x.device) + 1]   # (steps,) float64
    lam = 0.5 * (torch.log(a) - torch.log1p(-a))                                   # log(alpha / sigma)
    h = lam[1:] - lam[:-1]                                                         # step sizes
    sigma_ratio = ((1 - a[1:]) / (1 - a[:-1])).sqrt()
    coef = a[1:].sqrt() * torch.expm1(-h)
    r = torch.cat([h.new_ones(1), h[:-1] / h[1:]])                                 # h_{i-1} / h_i
    c_now, c_prev = 1 + 1 / (2 * r), 1 / (2 * r)
    table = [tuple(v.to(x.dtype) for v in row) for row in zip(sigma_ratio, coef, c_now, c_prev)]
    previous = None
    for i, t in enumerate(times):
        x0, _, _ = _predict_x0(denoiser, x, t, schedule, threshold)
        if i + 1 == len(times):           # last step solves to sigma = 0: the data prediction itself
            _report(callback, i, steps)
            return x0
        ratio, step_coef, w_now, w_prev = table[i]
        d = x0 if previous is None or i + 2 == len(times) else w_now * x0 - w_prev * previous
        x = ratio * x - step_coef * d
        previous = x0
        _report(callback, i, steps)
    return x


@dataclass(frozen=True)
class SamplerSpec:
    fn: Callable[..., torch.Tensor]
    all_steps: bool          # runs every step of the schedule (steps must equal T)
    takes_eta: bool          # eta (stochasticity) means something to it


SAMPLERS: Dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(ddpm, all_steps=True, takes_eta=False),
    "ddim": SamplerSpec(ddim, all_steps=False, takes_eta=True),
    "dpmpp": SamplerSpec(dpmpp_2m, all_steps=False, takes_eta=False),
}


def check_sampler(name: str, steps: int, timesteps: int, eta: float = 0.0) -> SamplerSpec:
    """The sampler's spec; a ValueError that names the problem for an unknown sampler or settings it cannot take."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {list(SAMPLERS)}")
    spec = SAMPLERS[name]
    if spec.all_steps and steps != timesteps:
        raise ValueError(f"{name} runs all {timesteps} steps; use one of "
                         f"{[n for n, s in SAMPLERS.items() if not s.all_steps]} for {steps}")
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
    if eta and not spec.takes_eta:
        raise ValueError(f"eta={eta} has no effect on {name}; only {[n for n, s in SAMPLERS.items() if s.takes_eta]} "
                         f"take it")
    return spec


def sample(name: str, denoiser: Denoiser, schedule: Schedule, x: torch.Tensor, noise: NoiseFn, *,
           steps: int, eta: float = 0.0, threshold: Optional[float] = 0.9, callback: Callback = None) -> torch.Tensor:
    spec = check_sampler(name, steps, schedule.timesteps, eta)
    return spec.fn(denoiser, schedule, x, noise, steps=steps, eta=eta, threshold=threshold, callback=callback)
