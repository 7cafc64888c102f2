"""Parameterisations (Ho et al. 2020, Eq. 4 and 11): x_t = sqrt(abar) x0 + sqrt(1 - abar) eps.

A network predicts eps (the paper) or x0; ``as_eps`` turns either into the eps-denoiser the samplers take.
"""
from __future__ import annotations

import torch


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, abar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return _bc(abar.sqrt(), x0) * x0 + _bc((1 - abar).sqrt(), x0) * noise


def x0_from_eps(x_t: torch.Tensor, abar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return _bc((1 / abar).sqrt(), x_t) * x_t - _bc((1 / abar - 1).sqrt(), x_t) * eps


def eps_from_x0(x_t: torch.Tensor, abar: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return (x_t - _bc(abar.sqrt(), x_t) * x0) / _bc((1 - abar).sqrt(), x_t)


PREDICTIONS = ("eps", "x0")


def as_eps(network, schedule, prediction: str):
    """network(x_t, t, *cond) predicting ``prediction`` -> the same callable predicting eps."""
    if prediction == "eps":
        return network
    if prediction != "x0":
        raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")

    def denoiser(x_t: torch.Tensor, t: torch.Tensor, *cond) -> torch.Tensor:
        return eps_from_x0(x_t, schedule.abar(t).to(x_t.device), network(x_t, t, *cond))
    return denoiser
