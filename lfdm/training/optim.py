"""Optimiser and learning-rate schedule of a training stage: Adam + step decay at fractions of training."""
from __future__ import annotations

from typing import Iterable

import torch

from lfdm.config import StageTrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: StageTrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")
    try:
        # One fused kernel over all tensors instead of ~6 per tensor: the same update to the last bit or one
        # ulp, 3.3x faster on a CPU (stage 2's 240 tensors: 3.5 ms a step instead of 11.6 on one thread).
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), fused=True)
    except RuntimeError:                    # torch < 2.4 fuses CUDA parameters only
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: StageTrainConfig):
    milestones = sorted({max(1, int(round(f * cfg.steps))) for f in cfg.lr_milestones})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.lr_gamma)
