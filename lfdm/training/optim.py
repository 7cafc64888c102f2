"""Optimiser and learning-rate schedule of a training stage: Adam + step decay at fractions of training."""
from __future__ import annotations

from typing import Iterable

import torch

from lfdm.config import StageTrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: StageTrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: StageTrainConfig):
    milestones = sorted({max(1, int(round(f * cfg.steps))) for f in cfg.lr_milestones})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.lr_gamma)
