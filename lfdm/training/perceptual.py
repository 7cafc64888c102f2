"""Stage-1 reconstruction loss: the VGG19 perceptual pyramid (MRAA / LFDM) or a logged fallback.

Perceptual: for scales {1, 1/2, 1/4, 1/8} (anti-aliased) and VGG19 relu1_1..relu5_1, weight 10 each,
L1 between features of prediction and (detached) target: 20 terms summed.
Fallback, used only when no VGG19 file is given (none can be downloaded here): the same pyramid with
L1 on pixels and on image gradients instead of VGG features. Training announces it loudly at start:
results with it are not comparable to the paper's.
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

from lfdm.models.blocks import downsample
from lfdm.models.vgg import VGG19Features

log = logging.getLogger(__name__)

FALLBACK_WARNING = (
    "NO VGG19 WEIGHTS: train.lfae_loss.vgg_weights is not set, so stage 1 uses the FALLBACK loss "
    "(multi-scale L1 on pixels and image gradients) instead of the VGG19 perceptual loss. Results are "
    "not comparable to the paper's. Pass train.lfae_loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth "
    "(torchvision's ImageNet VGG19) to train as the paper does.")


class ImagePyramid(nn.Module):
    def __init__(self, scales: Sequence[float], channels: int = 3):
        super().__init__()
        self.scales = tuple(scales)
        self.downs = nn.ModuleList(downsample(channels, s) for s in self.scales)

    def forward(self, x: torch.Tensor):
        return [down(x) for down in self.downs]


def _gradients(x: torch.Tensor):
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class ReconstructionLoss(nn.Module):
    def __init__(self, scales: Sequence[float], weights: Sequence[float], vgg_weights: str | None):
        super().__init__()
        self.pyramid = ImagePyramid(scales)
        self.weights = tuple(weights)
        self.vgg = VGG19Features.from_torchvision_file(vgg_weights) if vgg_weights else None
        self.uses_fallback = self.vgg is None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = prediction.new_zeros(())
        for pred, real in zip(self.pyramid(prediction), self.pyramid(target)):
            if self.vgg is not None:
                for w, fp, fr in zip(self.weights, self.vgg(pred), self.vgg(real)):
                    total = total + w * (fp - fr.detach()).abs().mean()
            else:
                weight = sum(self.weights) / 2
                total = total + weight * (pred - real).abs().mean()
                for gp, gr in zip(_gradients(pred), _gradients(real)):
                    total = total + weight * (gp - gr).abs().mean()
        return total
