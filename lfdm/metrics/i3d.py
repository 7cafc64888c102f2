"""Inception-v1 inflated 3D (I3D; Carreira & Zisserman 2017): exactly the network FVD uses
(Unterthiner et al. 2018; TF-Hub "i3d-kinetics-400").

TF "SAME" padding (asymmetric: the extra pixel goes after), zero-padded convolutions and
-inf-padded max pools; BatchNorm with eps 1e-3 and no scale (weight = 1); the 400 logits are
averaged over time. Input: (B, 3, T, 224, 224) in [-1, 1], T >= 9. Parameter names follow the
usual PyTorch layout (pytorch-i3d / TATS / VideoGPT): ``Mixed_4b.b1b.conv3d.weight`` ...
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

MIN_FRAMES = 9
INCEPTION_CHANNELS = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]), "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]), "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]), "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]), "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TF SAME: total = max((ceil(n/s) - 1) * s + k - n, 0), split (total // 2, total - total // 2)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value: float = 0.0) -> torch.Tensor:
    pads = []
    for dim, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        pads += list(same_padding(dim, k, s))
    return F.pad(x, pads, value=value)


class BatchNormNoScale(nn.Module):
    """Inference BatchNorm (eps 1e-3) with the 4 tensors of the PyTorch layout; weight stays 1 for TF weights."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, 1e-3)


class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 bias: bool = False, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, bias=bias)
        self.bn = BatchNormNoScale(cout) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = [same_padding(n, k, s) for n, k, s in zip(x.shape[2:], self.kernel, self.stride)]
        if all(before == after for before, after in pads):     # the convolution pads itself: no padded copy
            x = F.conv3d(x, self.conv3d.weight, self.conv3d.bias, self.stride, [before for before, _ in pads])
        else:
            x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


def max_pool_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """TF SAME max pool, one axis at a time (a max over a box is the max of maxes along each axis): the same
    values as ``F.max_pool3d``, which on a CPU also computes indices and visits all k^3 taps (I3D 1.4x faster)."""
    x = pad_same(x, kernel, stride, value=float("-inf"))
    for dim, (k, s) in enumerate(zip(kernel, stride), start=2):
        n = (x.shape[dim] - k) // s + 1                                  # outputs along this axis
        taps = [x.narrow(dim, j, s * (n - 1) + 1) for j in range(k)]
        taps = [t[(slice(None),) * dim + (slice(None, None, s),)] for t in taps]
        x = taps[0]
        for tap in taps[1:]:
            x = torch.maximum(x, tap)
    return x


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: Sequence[int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3b = Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], dim=1)


class InceptionI3d(nn.Module):
    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, (cin, channels) in INCEPTION_CHANNELS.items():
            setattr(self, name, InceptionModule(cin, channels))
        self.logits = Unit3D(1024, num_classes, bn=False, bias=True, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, 400) logits averaged over time."""
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}")
        x = self.Conv3d_1a_7x7(x)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
        x = self.Mixed_5c(self.Mixed_5b(x))
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)                          # VALID
        return self.logits(x).squeeze(-1).squeeze(-1).mean(dim=2)
