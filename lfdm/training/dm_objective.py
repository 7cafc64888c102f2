"""Stage-2 objective as one module (for DDP): eps-MSE of the conditional 3D U-Net (paper Eq. 7), or the
x0-MSE when the network predicts x0 (diffusion.prediction).

The class condition is the label's stored text embedding, or with phrasings (``text.phrasings``) the
embedding of one of its class's sentences drawn per clip, plus optional Gaussian noise in the map's class
subspace (``text.condition_noise``); either is replaced by the null embedding with
probability ``cond_drop_prob`` (classifier-free guidance training). With colour jitter on, z0 is
re-encoded from a jittered frame 0 by the frozen encoder; the flow targets come from the cache.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import nn

from lfdm.config import ClipJitterConfig
from lfdm.data.transforms import JitterFactors, color_jitter
from lfdm.diffusion.losses import diffusion_loss
from lfdm.diffusion.parameterisation import Prediction
from lfdm.models.autoencoder import ImageEncoder
from lfdm.models.unet3d import UNet3D


class DmObjective(nn.Module):
    def __init__(self, unet: UNet3D, prediction: Prediction, text_embeddings: torch.Tensor, cond_drop_prob: float,
                 encoder: Optional[ImageEncoder] = None, jitter: Optional[ClipJitterConfig] = None,
                 min_snr_gamma: Optional[float] = None,
                 phrasings: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                 condition_noise: Optional[Tuple[torch.Tensor, float]] = None,
                 class_weights: Optional[torch.Tensor] = None):
        """``phrasings``: (embeddings (P, D), class of each (P,)) of the training sentences, drawn from per clip.
        ``condition_noise``: (directions (r, D), standard deviation) of Gaussian noise added to each condition
        (``TextConditions.condition_noise``)."""
        super().__init__()
        directions, self.noise_std = condition_noise or (torch.zeros(0, text_embeddings.shape[1]), 0.0)
        self.register_buffer("noise_directions", directions.float(), persistent=False)
        self.unet = unet
        self.prediction = prediction
        self.register_buffer("text_embeddings", text_embeddings.float())
        self.phrasings = phrasings is not None and phrasings[0].shape[0] > text_embeddings.shape[0]
        if self.phrasings:
            embeddings, classes = phrasings
            counts = classes.bincount(minlength=text_embeddings.shape[0])              # (n,)
            choices = torch.zeros(len(counts), int(counts.max()), dtype=torch.long)    # (n, max sentences per class)
            for c in range(len(counts)):
                choices[c, :counts[c]] = (classes == c).nonzero()[:, 0]
            self.register_buffer("phrasing_embeddings", embeddings.float())
            self.register_buffer("phrasing_counts", counts)
            self.register_buffer("phrasing_choices", choices)
        self.cond_drop_prob = cond_drop_prob
        self.encoder = encoder.eval().requires_grad_(False) if encoder is not None else None
        self.jitter = jitter
        self.min_snr_gamma = min_snr_gamma
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float(), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()
        return self

    @torch.no_grad()
    def _jittered_z0(self, frame0: torch.Tensor, seeds) -> torch.Tensor:
        images = frame0.float() / 255
        out = []
        for image, seed in zip(images, seeds):
            j = self.jitter
            f = JitterFactors.draw(np.random.default_rng(int(seed)), j.brightness, j.contrast, j.saturation, j.hue)
            out.append(color_jitter(image, f))
        return self.encoder(torch.stack(out))[-1]

    def forward(self, x0: torch.Tensor, z0: torch.Tensor, label: torch.Tensor, generator: torch.Generator,
                frame0: Optional[torch.Tensor] = None, jitter_seed=None) -> torch.Tensor:
        if self.jitter is not None and self.encoder is not None and frame0 is not None:
            z0 = self._jittered_z0(frame0, jitter_seed.tolist())
        text = self.conditions(label, generator)
        use_null = torch.rand(x0.shape[0], device=x0.device, generator=generator) < self.cond_drop_prob
        z0_features = self.unet.encode_condition(z0.to(x0.dtype))

        def network(x_t, t):
            return self.unet(x_t, t, text=text, z0_features=z0_features, use_null=use_null)
        weights = None if self.class_weights is None else self.class_weights[label]
        return diffusion_loss(network, x0, self.prediction, generator=generator, min_snr_gamma=self.min_snr_gamma,
                              sample_weights=weights)

    def conditions(self, label: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B,) labels -> (B, D) training conditions: the label's or a drawn sentence's, plus the noise if on."""
        text = self._sentences(label, generator) if self.phrasings else self.text_embeddings[label]
        if self.noise_std:
            coords = torch.randn(label.shape[0], self.noise_directions.shape[0], device=label.device,
                                 generator=generator)                                     # (B, r)
            text = text + self.noise_std * coords @ self.noise_directions
        return text

    def _sentences(self, label: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, D): for each clip, one sentence of its class, drawn uniformly."""
        u = torch.rand(label.shape[0], device=label.device, generator=generator)
        pick = (u * self.phrasing_counts[label]).long().clamp_max(self.phrasing_counts[label] - 1)
        return self.phrasing_embeddings[self.phrasing_choices[label, pick]]


def dm_loss(objective: nn.Module, batch: dict, generator: torch.Generator):
    """Stage-2 loss for ``train_step``."""
    loss = objective(batch["x0"], batch["z0"], batch["label"], generator,
                     frame0=batch.get("frame0"), jitter_seed=batch.get("jitter_seed"))
    return loss, {"loss": loss}
