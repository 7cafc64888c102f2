"""2D building blocks of the stage-1 auto-encoder (FOMM/MRAA lineage), BatchNorm throughout.

Attribute names follow the official checkpoints (conv, norm, pool, ...), so importing them is a
prefix mapping.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn


class SameBlock2d(nn.Module):
    """conv -> BN -> ReLU at constant resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(SameBlock2d):
    """conv3x3 -> BN -> ReLU -> AvgPool2: halves the resolution."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, 3, 1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class UpBlock2d(SameBlock2d):
    """nearest x2 -> conv3x3 -> BN -> ReLU: doubles the resolution."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock2d(nn.Module):
    """BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, plus the identity."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(features)
        self.norm2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out))) + x


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2 ** level)


class HourglassEncoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else _width(block_expansion, max_features, i),
                        _width(block_expansion, max_features, i + 1))
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.up_blocks = nn.ModuleList(
            UpBlock2d((1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1),
                      _width(block_expansion, max_features, i))
            for i in reversed(range(num_blocks)))
        self.out_filters = block_expansion + in_features

    def forward(self, skips: List[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style: out has ``block_expansion + in_features`` channels at the input resolution."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasDownsample(nn.Module):
    """Gaussian blur (sigma = (1/s - 1)/2, kernel 2*round(4 sigma)+1) then stride 1/s."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.ka = size // 2
        self.kb = self.ka - 1 if size % 2 == 0 else self.ka
        axis = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-((axis - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).clone())
        self.groups = channels
        self.stride = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The strided convolution computes exactly the pixels the official code kept of its full-resolution one
        # (out[:, :, ::s, ::s]), without the others: 1/s^2 of the work, a tenth of a demo64 stage-1 step.
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        return F.conv2d(out, self.weight.to(x.dtype), groups=self.groups, stride=self.stride)


def downsample(channels: int, scale: float) -> nn.Module:
    return nn.Identity() if scale == 1 else AntiAliasDownsample(channels, scale)
