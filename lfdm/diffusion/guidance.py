"""Classifier-free guidance (paper Eq. 4; Ho & Salimans 2022): eps = eps(null) + g (eps(cond) - eps(null)).

g = 1 is the conditional model alone and g = 0 the unconditional one: one forward each. Otherwise the
conditional and null halves run as one doubled batch.

``from_t`` limits guidance to the noisier steps t >= from_t (Kynkaenniemi et al. 2024, "Applying guidance in a
limited interval improves sample and distribution quality"): below it the conditional model alone, one forward.
The class of a motion is settled at high noise; guidance at low noise only sharpens what is there, and in the
demo it made zoom-outs vanish and moving objects shrink.
"""
from __future__ import annotations

from typing import Callable

import torch

ConditionalModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]   # (x, t, use_null)


def guided(model: ConditionalModel, scale: float, use_null: torch.Tensor | None = None, from_t: int = 0):
    """-> denoiser(x, t). ``use_null`` (B,) forces the null condition for some videos (stochastic I2V);
    videos whose step t (B,) is below ``from_t`` get the conditional model alone."""
    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        base = torch.zeros(b, dtype=torch.bool, device=x.device) if use_null is None else use_null
        # (B,) where guidance applies; None: on every step, with no comparison (and no device sync) per step
        interval = t >= from_t if from_t > 0 else None
        if scale == 1.0 or (interval is not None and not interval.any()):
            return model(x, t, base)
        if scale == 0.0:
            out = model(x, t, torch.ones_like(base))
            if interval is None or interval.all():
                return out
            return torch.where(_per_video(interval, out), out, model(x, t, base))
        eps = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([base, torch.ones_like(base)]))
        cond, null = eps.chunk(2)
        out = null + scale * (cond - null)
        return out if interval is None else torch.where(_per_video(interval, cond), out, cond)
    return denoiser


def _per_video(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(-1, *([1] * (like.dim() - 1)))
