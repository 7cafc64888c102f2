"""Self-reconstruction L1 (paper Table 3): mean |prediction - frame| over [0, 1] pixels.

A streaming accumulator, exact in float64 whatever the batching.
"""
from __future__ import annotations

import torch


class MeanAbsoluteError:
    def __init__(self):
        self.total = 0.0
        self.count = 0

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        self.total += float((prediction.double() - target.double()).abs().sum())
        self.count += target.numel()

    @property
    def value(self) -> float:
        if self.count == 0:
            raise ValueError("no pixels accumulated")
        return self.total / self.count
