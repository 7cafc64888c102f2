"""VGG19 feature stack with torchvision's parameter names (``features.{i}.weight``).

A user's ImageNet file (torchvision's ``vgg19-dcbb9e9d.pth``) loads from a path; nothing is
downloaded. Outputs relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of ImageNet-normalised input.
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

# torchvision cfg "E": numbers are conv widths, "M" max-pools; we need layers 0..29 (up to relu5_1)
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    def __init__(self):
        super().__init__()
        layers: List[nn.Module] = []
        channels = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=False)]
                channels = v
        self.features = nn.Sequential(*layers[:SLICES[-1][1]])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = (x - self.mean) / self.std
        outs = []
        for start, end in SLICES:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
        return outs

    @classmethod
    def from_torchvision_file(cls, path: str) -> "VGG19Features":
        """Load ``features.*`` from a torchvision VGG19 state dict (classifier weights are ignored)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = cls()
        wanted = {k for k in model.state_dict() if k.startswith("features.")}
        missing = sorted(wanted - set(state))
        if missing:
            raise ValueError(f"{path} is not a torchvision VGG19 state dict: missing {missing[:4]}")
        model.load_state_dict({k: state[k] for k in wanted} | {"mean": model.mean, "std": model.std})
        return model
