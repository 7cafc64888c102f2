"""Small helpers the tests share: a free loopback port, and a tiny full model (random weights) saved as a
generation checkpoint."""
from __future__ import annotations

import socket
from typing import Mapping, Optional, Sequence

import torch

from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.presets import get_preset


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_tiny_model(uri: str, labels: Sequence[str], overrides: Optional[Mapping[str, object]] = None,
                    seed: int = 0) -> str:
    """The `tiny` preset (with ``overrides``) as a full generation checkpoint with seeded random weights."""
    torch.manual_seed(seed)
    cfg = get_preset("tiny", dict(overrides or {}))
    ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), list(labels),
                         torch.randn(len(labels), cfg.unet.text_dim)).save(uri)
    return uri
