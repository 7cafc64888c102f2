"""Parameterisations (Ho et al. 2020, Eq. 4 and 11): x_t = sqrt(abar) x0 + sqrt(1 - abar) eps.

A network predicts eps (the paper) or x0. ``Prediction`` turns its output into both, and is the one
wrapper the training loss and the samplers share (EDM's preconditioning, Karras et al. 2022, Sec. 5):
the samplers take its eps-denoiser, the loss compares its x0 with the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from lfdm.diffusion.schedule import Schedule

PREDICTIONS = ("eps", "x0")


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, abar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return _bc(abar.sqrt(), x0) * x0 + _bc((1 - abar).sqrt(), x0) * noise


def x0_from_eps(x_t: torch.Tensor, abar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return _bc((1 / abar).sqrt(), x_t) * x_t - _bc((1 / abar - 1).sqrt(), x_t) * eps


def eps_from_x0(x_t: torch.Tensor, abar: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return (x_t - _bc(abar.sqrt(), x_t) * x0) / _bc((1 - abar).sqrt(), x_t)


@dataclass(frozen=True)
class Prediction:
    """What the network outputs (``kind``: eps or x0) -> eps and x0 at the same (x_t, t)."""
    kind: str
    schedule: Schedule

    def __post_init__(self):
        if self.kind not in PREDICTIONS:
            raise ValueError(f"unknown prediction {self.kind!r}; expected one of {PREDICTIONS}")

    def eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "eps":
            return output
        return eps_from_x0(x_t, self.schedule.abar(t).to(x_t.device), output)

    def x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "x0":
            return output
        return x0_from_eps(x_t, self.schedule.abar(t).to(x_t.device), output)

    def eps_denoiser(self, network: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """network(x_t, t, *cond) -> the eps-denoiser(x_t, t, *cond) the samplers take."""
        if self.kind == "eps":
            return network

        def denoiser(x_t: torch.Tensor, t: torch.Tensor, *cond) -> torch.Tensor:
            return self.eps(network(x_t, t, *cond), x_t, t)
        return denoiser

    def x0_loss_weight(self, abar: torch.Tensor, min_snr_gamma: Optional[float] = None) -> torch.Tensor:
        """w_t of w_t ||x0_hat - x0||^2. Uniform: the network's own MSE, i.e. SNR_t for eps (||eps_hat - eps||^2
        = SNR_t ||x0_hat - x0||^2) and 1 for x0. Min-SNR (Hang et al. 2023, Eq. 9): min(SNR_t, gamma) for both."""
        snr = abar / (1 - abar)
        if min_snr_gamma is not None:
            return snr.clamp(max=min_snr_gamma)
        return snr if self.kind == "eps" else torch.ones_like(snr)
