"""Noise schedule (DDPM, Ho et al. 2020): q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), t = 0..T-1.

Cosine schedule (Nichol & Dhariwal 2021, Eq. 17): abar(t) = f(t)/f(0), f(t) = cos^2(((t/T) + s)/(1 + s) pi/2),
beta_t = 1 - abar_t / abar_{t-1} clipped to max_beta. Computed in float64 like the official code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict

import torch

if TYPE_CHECKING:              # lfdm.config imports the sampler registry, which imports this module
    from lfdm.config import DiffusionConfig


@dataclass(frozen=True)
class Schedule:
    betas: torch.Tensor            # (T,) float64
    alphas_cumprod: torch.Tensor   # (T,) float64: abar_t

    @property
    def timesteps(self) -> int:
        return self.betas.shape[0]

    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """abar at integer steps t (float64, on t's device); t = -1 means 'clean data' (abar = 1)."""
        return self.padded_abar(t.device)[t.long() + 1]

    def padded_abar(self, device) -> torch.Tensor:
        """[1, abar_0, ..., abar_{T-1}] on ``device``, cached: no host-device copy per sampling step."""
        key = str(torch.device(device))
        cache = self.__dict__.setdefault("_device_cache", {})
        if key not in cache:
            cache[key] = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod]).to(device)
        return cache[key]

    def official_buffers(self) -> Dict[str, torch.Tensor]:
        """The float32 buffers the official GaussianDiffusion registers (for import checks and tests)."""
        betas, ac = self.betas, self.alphas_cumprod
        ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
        post_var = betas * (1 - ac_prev) / (1 - ac)
        out = {
            "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": ac.sqrt(), "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
            "log_one_minus_alphas_cumprod": torch.log(1 - ac), "sqrt_recip_alphas_cumprod": (1 / ac).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1 / ac - 1).sqrt(), "posterior_variance": post_var,
            "posterior_log_variance_clipped": torch.log(post_var.clamp(min=1e-20)),
            "posterior_mean_coef1": betas * ac_prev.sqrt() / (1 - ac),
            "posterior_mean_coef2": (1 - ac_prev) * (1 - betas).sqrt() / (1 - ac),
        }
        return {k: v.float() for k, v in out.items()}


def cosine_schedule(cfg: "DiffusionConfig") -> Schedule:
    steps = cfg.timesteps
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
    f = torch.cos(((x / steps) + cfg.cosine_s) / (1 + cfg.cosine_s) * torch.pi * 0.5) ** 2
    abar = f / f[0]
    betas = torch.clip(1 - abar[1:] / abar[:-1], 0, cfg.max_beta)
    return Schedule(betas=betas, alphas_cumprod=torch.cumprod(1 - betas, dim=0))
