"""The latent flow auto-encoder (LFAE, paper Sec. 3.2.1): encoder Phi, decoder Omega, flow predictor F.

Decoding is not a plain decoder of the warped latent (it is what the official generator does):
  1. out = W(z_src, f) * m, then the residual bottleneck;                        (paper Eq. 5)
  2. at every up level: out = W(skip_src, f) * m + out * (1 - m), then up-sample;
  3. final conv + sigmoid, then pred = W(x_src, f) * m + pred * (1 - m),
with f and m resized bilinearly to each level. Skips are the source encoder's features.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from lfdm.config import AutoencoderConfig
from lfdm.models.background import BackgroundMotionPredictor
from lfdm.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from lfdm.models.flow_predictor import DenseFlowPredictor, unwrap_axis_signs
from lfdm.models.region import RegionPredictor
from lfdm.models.warp import resize_map, warp


class ImageEncoder(nn.Module):
    """Phi: image (B, 3, H, W) -> features at H, H/2, ..., latent z = last (B, C, H/4, W/4)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.first = SameBlock2d(cfg.num_channels, cfg.block_expansion, kernel_size=7, padding=3)
        width = lambda i: min(cfg.max_features, cfg.block_expansion * 2 ** i)  # noqa: E731
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(cfg.num_down_blocks))

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        skips = [self.first(image)]
        for block in self.down_blocks:
            skips.append(block(skips[-1]))
        return skips


class ImageDecoder(nn.Module):
    """Omega: source features + flow + occlusion -> frame in [0, 1]."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        width = lambda i: min(cfg.max_features, cfg.block_expansion * 2 ** i)  # noqa: E731
        n = cfg.num_down_blocks
        self.bottleneck = nn.Sequential()
        for i in range(cfg.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(n)))
        self.up_blocks = nn.ModuleList(UpBlock2d(width(n - i), width(n - i - 1)) for i in range(n))
        self.final = nn.Conv2d(cfg.block_expansion, cfg.num_channels, kernel_size=7, padding=3)
        self.align_corners = cfg.align_corners

    def _blend(self, skip: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor, previous=None):
        m = resize_map(occlusion, skip.shape[2:], self.align_corners)
        warped = warp(skip, flow, self.align_corners) * m
        return warped if previous is None else warped + previous * (1 - m)

    def forward(self, skips: List[torch.Tensor], source_image: torch.Tensor, flow: torch.Tensor,
                occlusion: torch.Tensor) -> torch.Tensor:
        out = self.bottleneck(self._blend(skips[-1], flow, occlusion))
        for i, block in enumerate(self.up_blocks):
            out = block(self._blend(skips[-(i + 1)], flow, occlusion, out))
        out = self._blend(skips[0], flow, occlusion, out)
        out = torch.sigmoid(self.final(out))
        return self._blend(source_image, flow, occlusion, out)


def expand_to(x: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat each of x's B items n/B times consecutively: source tensors for B*K driving frames."""
    if x.shape[0] == n:
        return x
    if n % x.shape[0]:
        raise ValueError(f"cannot expand a batch of {x.shape[0]} to {n}")
    k = n // x.shape[0]
    return x.unsqueeze(1).expand(x.shape[0], k, *x.shape[1:]).reshape(n, *x.shape[1:])


class LatentFlowAutoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg)
        self.decoder = ImageDecoder(cfg)
        self.region_predictor = RegionPredictor(cfg)
        self.bg_predictor = BackgroundMotionPredictor(cfg)
        self.flow_predictor = DenseFlowPredictor(cfg)

    def encode(self, image: torch.Tensor) -> List[torch.Tensor]:
        return self.encoder(image)

    def estimate_flow(self, source: torch.Tensor, driving: torch.Tensor, source_regions=None, driving_regions=None,
                      revert_axis_swap: Optional[bool] = None):
        """Backward latent flow driving -> source: flow (B, h, w, 2), occlusion (B, 1, h, w), regions."""
        source_regions = source_regions if source_regions is not None else self.region_predictor(source)
        driving_regions = driving_regions if driving_regions is not None else self.region_predictor(driving)
        bg = self.bg_predictor(source, driving)
        flow, occlusion = self.flow_predictor(source, source_regions, driving_regions, bg, revert_axis_swap)
        return flow, occlusion, source_regions, driving_regions

    def flows_from_source(self, source: torch.Tensor, frames: torch.Tensor,
                          batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(chunk, flow, occlusion) for every ``batch_size`` frames of one video against its source (1, 3, S, S);
        the source's regions are computed once. With ``unwrap_turns`` the frames must come in order from the
        source: every frame's regions are computed first and their axis signs chosen along the video."""
        source_regions = self.region_predictor(source)
        chunks = frames.split(batch_size)
        driving = [None] * len(chunks)                                   # None: each chunk's regions, folded per frame
        if self.cfg.unwrap_turns:
            driving = [self.region_predictor(chunk) for chunk in chunks]
            affines = unwrap_axis_signs(source_regions["affine"], torch.cat([r["affine"] for r in driving]))
            for regions, affine in zip(driving, affines.split(batch_size)):
                regions["affine"] = affine
        for chunk, driving_regions in zip(chunks, driving):
            n = chunk.shape[0]
            regions = {k: v.expand(n, *v.shape[1:]) for k, v in source_regions.items()}
            flow, occlusion, _, _ = self.estimate_flow(source.expand(n, -1, -1, -1), chunk, source_regions=regions,
                                                       driving_regions=driving_regions,
                                                       revert_axis_swap=False if self.cfg.unwrap_turns else None)
            yield chunk, flow, occlusion

    def decode(self, source_skips: List[torch.Tensor], source_image: torch.Tensor, flow: torch.Tensor,
               occlusion: torch.Tensor) -> torch.Tensor:
        """Frames (N, 3, H, W) for N flows; the B sources are repeated when N = B * K."""
        n = flow.shape[0]
        return self.decoder([expand_to(s, n) for s in source_skips], expand_to(source_image, n), flow, occlusion)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> Dict[str, torch.Tensor]:
        flow, occlusion, source_regions, driving_regions = self.estimate_flow(source, driving)
        prediction = self.decode(self.encode(source), source, flow, occlusion)
        return {"prediction": prediction, "flow": flow, "occlusion": occlusion,
                "deformed": warp(source, flow, self.cfg.align_corners),
                "source_regions": source_regions, "driving_regions": driving_regions}


def parameter_counts(model: LatentFlowAutoencoder) -> Dict[str, int]:
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters())
              for name in ("encoder", "decoder", "region_predictor", "bg_predictor", "flow_predictor")}
    counts["autoencoder_total"] = sum(counts.values())
    return counts
