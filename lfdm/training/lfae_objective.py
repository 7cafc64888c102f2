"""Stage-1 objective as one module, so a DDP wrapper sees every parameter in a single forward.

loss = reconstruction(prediction, driving) + 10 * equivariance_shift + 10 * equivariance_affine
(paper Eq. 6 with MRAA's equivariance terms). In decoder-only mode (new-domain adaptation, paper
Sec. 4.3 / Table 5) the encoder and the flow, region and background predictors are frozen and
only the reconstruction loss trains the decoder.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from lfdm.config import LfaeLossConfig
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.training.equivariance import RandomTPS, equivariance_losses
from lfdm.models.warp import coordinate_grid, warp
from lfdm.training.perceptual import ReconstructionLoss

FROZEN_IN_DECODER_ONLY = ("encoder", "region_predictor", "bg_predictor", "flow_predictor")


class LfaeObjective(nn.Module):
    def __init__(self, model: LatentFlowAutoencoder, loss: LfaeLossConfig, decoder_only: bool = False):
        super().__init__()
        self.model = model
        self.loss_cfg = loss
        self.reconstruction = ReconstructionLoss(loss.scales, loss.perceptual_weights, loss.vgg_weights)
        self.decoder_only = decoder_only
        self.progress = 1.0                 # fraction of training done (set_progress); 1 outside training loops
        if decoder_only:
            for name in FROZEN_IN_DECODER_ONLY:
                getattr(model, name).requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.decoder_only:   # frozen modules keep their BatchNorm statistics
            for name in FROZEN_IN_DECODER_ONLY:
                getattr(self.model, name).eval()
        return self

    def set_progress(self, fraction: float) -> None:
        self.progress = fraction

    def ramped(self, ramp: Tuple[float, float]) -> float:
        """0 before ramp's start, 1 from its end, linear in between (a step at start where start == end)."""
        start, end = ramp
        return float(self.progress >= start) if end <= start else min(max((self.progress - start) / (end - start), 0.0), 1.0)

    def equivariance_angle(self) -> float:
        """Largest rotation (radians) of this step's equivariance transform: the configured angle, ramped."""
        return math.radians(self.loss_cfg.equivariance_rotation) * self.ramped(self.loss_cfg.equivariance_rotation_ramp)

    def equivariance_log_scale(self) -> float:
        """Largest |log scale| of this step's equivariance transform: the configured one, ramped."""
        return self.loss_cfg.equivariance_scale * self.ramped(self.loss_cfg.equivariance_scale_ramp)

    def forward(self, source: torch.Tensor, driving: torch.Tensor,
                generator: torch.Generator | None = None) -> Dict[str, torch.Tensor]:
        model, cfg = self.model, self.loss_cfg
        if self.decoder_only:
            with torch.no_grad():
                skips = model.encode(source)
                flow, occlusion, _, _ = model.estimate_flow(source, driving)
            prediction = model.decode(skips, source, flow, occlusion)
            out = {"prediction": prediction, "flow": flow, "occlusion": occlusion}
        elif self.ramped(cfg.occlusion_ramp) < 1.0:
            flow, occlusion, source_regions, driving_regions = model.estimate_flow(source, driving)
            shown = 1 - self.ramped(cfg.occlusion_ramp) * (1 - occlusion)   # 1 (all visible) before the ramp
            out = {"prediction": model.decode(model.encode(source), source, flow, shown), "flow": flow,
                   "occlusion": occlusion, "driving_regions": driving_regions}
        else:
            out = model(source, driving)
        losses = {"reconstruction": self.reconstruction(out["prediction"], driving)}
        if cfg.warp_weight and not self.decoder_only:
            size = out["flow"].shape[1:3] if cfg.warp_resolution == "flow" else source.shape[2:]
            resized = lambda x: F.interpolate(x, size=size, mode="area")  # noqa: E731  (identity at "image")
            deformed = warp(resized(source), out["flow"], model.cfg.align_corners)     # (B, 3, h, w) or (B, 3, H, W)
            losses["warp"] = cfg.warp_weight * (deformed - resized(driving)).abs().mean()
        if not self.decoder_only and (cfg.equivariance_shift or cfg.equivariance_affine):
            transform = RandomTPS(driving.shape[0], cfg.sigma_affine, cfg.sigma_tps, cfg.points_tps,
                                  generator=generator, device=driving.device,
                                  rotation=self.equivariance_angle(), log_scale=self.equivariance_log_scale())
            transformed = model.region_predictor(transform.transform_frame(driving, model.cfg.align_corners))
            eq = equivariance_losses(out["driving_regions"], transformed, transform, model.cfg.revert_axis_swap)
            losses["equivariance_shift"] = cfg.equivariance_shift * eq["equivariance_shift"]
            losses["equivariance_affine"] = cfg.equivariance_affine * eq["equivariance_affine"]
        losses["loss"] = sum(losses.values())
        return {**losses, "flow_px": mean_displacement_px(out["flow"], driving.shape[-1]),
                "prediction": out["prediction"], "occlusion": out["occlusion"], "flow": out["flow"]}


LFAE_METRICS = ("loss", "reconstruction", "warp", "equivariance_shift", "equivariance_affine", "flow_px")


def mean_displacement_px(flow: torch.Tensor, image_size: int) -> torch.Tensor:
    """Mean |flow - identity| of a batch of backward grids (B, h, w, 2), in image pixels (detached).

    A collapsed stage 1 (every motion weight on a still background, the decoder painting the driving frame
    from the occlusion map alone) shows up here as ~0 while the reconstruction loss still falls."""
    _, h, w, _ = flow.shape
    identity = coordinate_grid(h, w, flow.device, flow.dtype)
    return ((flow.detach() - identity).norm(dim=-1).mean() * (image_size - 1) / 2)


def lfae_loss(objective: nn.Module, batch: dict, generator: torch.Generator):
    """Stage-1 loss for ``train_step``: the objective module's total loss and its terms."""
    out = objective(batch["source"], batch["driving"], generator=generator)
    return out["loss"], {k: out[k] for k in LFAE_METRICS if k in out}
