"""Background motion predictor: a global affine from (source, driving), initialised to the identity."""
from __future__ import annotations

import torch
from torch import nn

from lfdm.config import AutoencoderConfig
from lfdm.models.blocks import HourglassEncoder


class BackgroundMotionPredictor(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        bg = cfg.background
        self.encoder = HourglassEncoder(bg.block_expansion, 2 * cfg.num_channels, bg.num_blocks, bg.max_features)
        self.fc = nn.Linear(min(bg.max_features, bg.block_expansion * 2 ** bg.num_blocks), 6)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """-> (B, 3, 3) homogeneous affine mapping driving coordinates to source coordinates."""
        features = self.encoder(torch.cat([source, driving], dim=1))[-1].mean(dim=(2, 3))
        top = self.fc(features).view(-1, 2, 3)
        bottom = torch.tensor([0.0, 0.0, 1.0], device=top.device, dtype=top.dtype).expand(top.shape[0], 1, 3)
        return torch.cat([top, bottom], dim=1)
