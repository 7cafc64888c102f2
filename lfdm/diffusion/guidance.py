"""Classifier-free guidance (paper Eq. 4; Ho & Salimans 2022): eps = eps(null) + g (eps(cond) - eps(null)).

g = 1 is the conditional model alone and g = 0 the unconditional one: one forward each. Otherwise the
conditional and null halves run as one doubled batch.
"""
from __future__ import annotations

from typing import Callable

import torch

ConditionalModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]   # (x, t, use_null)


def guided(model: ConditionalModel, scale: float, use_null: torch.Tensor | None = None):
    """-> denoiser(x, t). ``use_null`` (B,) forces the null condition for some videos (stochastic I2V)."""
    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        base = torch.zeros(b, dtype=torch.bool, device=x.device) if use_null is None else use_null
        if scale == 1.0:
            return model(x, t, base)
        if scale == 0.0:
            return model(x, t, torch.ones_like(base))
        eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([base, torch.ones_like(base)]))
        cond, null = eps.chunk(2)
        return null + scale * (cond - null)
    return denoiser
