"""Conditional 3D U-Net denoiser of LFDM stage 2 (paper Sec. 3.2.2; video diffusion U-Net of Ho et al. 2022).

Input: x_t (B, 3, K, h, w) noisy (flow x, flow y, 2*occlusion-1), the source latent z0 (B, C, h, w)
repeated over K, the time step and a class text embedding. Output: predicted noise, same shape as x_t.
Convolutions are spatial only (1, k, k); time is mixed by temporal attention. There is no temporal
down/up-sampling. Conditioning vector = cat(time MLP, text embedding or the null embedding).

The first convolution sees cat(x_t, z0 repeated over K). Its z0 part does not depend on the frame
or the step, so ``encode_condition`` computes it once per video and ``forward`` adds it (the same
function as convolving the concatenation, with fewer FLOPs; ``forward_concat`` is that plain form).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lfdm.config import UNetConfig
from lfdm.models.attention import (ChannelLayerNorm, RelativePositionBias, RotaryEmbedding, SpatialAttention,
                                   SpatialLinearAttention, TemporalAttention)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) -> (B, dim): [sin(t w_i), cos(t w_i)], w_i = 10000^(-i/(dim/2 - 1)) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class TimeMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.linear1 = nn.Linear(dim, 4 * dim)
        self.linear2 = nn.Linear(4 * dim, 4 * dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.linear2(F.gelu(self.linear1(sinusoidal_embedding(t, self.dim))))


class Block(nn.Module):
    """conv (1,3,3) -> GroupNorm -> optional FiLM x*(scale+1)+shift -> SiLU."""

    def __init__(self, dim: int, dim_out: int, groups: int):
        super().__init__()
        self.proj = nn.Conv3d(dim, dim_out, (1, 3, 3), padding=(0, 1, 1))
        self.norm = nn.GroupNorm(groups, dim_out)

    def forward(self, x: torch.Tensor, scale_shift=None) -> torch.Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return F.silu(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dim_out: int, groups: int, cond_dim: Optional[int] = None):
        super().__init__()
        self.film = nn.Linear(cond_dim, 2 * dim_out) if cond_dim else None
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv3d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        scale_shift = None
        if self.film is not None:
            scale_shift = self.film(F.silu(cond))[:, :, None, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, scale_shift)) + self.res_conv(x)


class NearestUpsample(nn.Module):
    """Nearest x2 in space then conv (1,3,3): the NATOPS official variant of the up-sampler."""

    def __init__(self, dim: int, padding_mode: str):
        super().__init__()
        self.conv = nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1), padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))


class TemporalConv(nn.Module):
    """Pre-norm residual convolution across 3 frames, x + conv_t(norm(x)), x (B, C, K, H, W); starts as the
    identity (zero output weights). The temporal mixer of ``top_temporal="conv"``: at the latent's resolution
    the frames' attention costs more than the rest of a level (about a quarter of a demo64 training step)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.conv = nn.Conv3d(dim, dim, (3, 1, 1), padding=(1, 0, 0))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        return x + self.conv(self.norm(x))


def temporal_mixer(dim: int, cfg: UNetConfig, rotary: RotaryEmbedding, top: bool) -> nn.Module:
    if top and cfg.top_temporal == "conv":
        return TemporalConv(dim)
    return TemporalAttention(dim, cfg.attn_heads, cfg.attn_dim_head, rotary)


class Level(nn.Module):
    """Two ResnetBlocks, spatial linear attention, temporal attention, then re-sampling (or none)."""

    def __init__(self, dim_in: int, dim_out: int, cfg: UNetConfig, cond_dim: int, rotary: RotaryEmbedding,
                 resample: nn.Module, top: bool = False):
        super().__init__()
        self.res1 = ResnetBlock(dim_in, dim_out, cfg.resnet_groups, cond_dim)
        self.res2 = ResnetBlock(dim_out, dim_out, cfg.resnet_groups, cond_dim)
        self.spatial_attn = (SpatialLinearAttention(dim_out, cfg.attn_heads, cfg.attn_dim_head)
                             if cfg.use_sparse_linear_attn else nn.Identity())
        self.temporal_attn = temporal_mixer(dim_out, cfg, rotary, top)
        self.resample = resample

    def forward(self, x, cond, bias):
        x = self.temporal_attn(self.spatial_attn(self.res2(self.res1(x, cond), cond)), bias)
        return x, self.resample(x)


class Head(nn.Module):
    def __init__(self, dim_in: int, dim: int, out: int, groups: int):
        super().__init__()
        self.block = ResnetBlock(dim_in, dim, groups)
        self.out = nn.Conv3d(dim, out, 1)

    def forward(self, x):
        return self.out(self.block(x))


class UNet3D(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        dim, channels = cfg.dim, cfg.out_flow_channels + cfg.out_occlusion_channels
        self.channels = channels
        rotary = RotaryEmbedding(min(32, cfg.attn_dim_head))
        self.time_rel_pos_bias = RelativePositionBias(cfg.attn_heads, cfg.rel_pos_num_buckets,
                                                      cfg.rel_pos_max_distance)
        pad = cfg.init_kernel_size // 2
        self.init_conv = nn.Conv3d(channels + cfg.latent_channels, dim, (1, cfg.init_kernel_size, cfg.init_kernel_size),
                                   padding=(0, pad, pad))
        self.init_temporal_attn = temporal_mixer(dim, cfg, rotary, top=True)
        self.time_mlp = TimeMLP(dim)
        cond_dim = 4 * dim + cfg.text_dim
        if cfg.learn_null_cond:
            self.null_cond = nn.Parameter(torch.randn(1, cfg.text_dim))
        else:
            self.register_buffer("null_cond", torch.zeros(1, cfg.text_dim))
        dims = [dim, *(dim * m for m in cfg.dim_mults)]
        pairs = list(zip(dims[:-1], dims[1:]))
        last = len(pairs) - 1
        self.downs = nn.ModuleList(
            Level(a, b, cfg, cond_dim, rotary,
                  nn.Conv3d(b, b, (1, 4, 4), (1, 2, 2), (0, 1, 1)) if i < last else nn.Identity(), top=i == 0)
            for i, (a, b) in enumerate(pairs))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, cfg.resnet_groups, cond_dim)
        self.mid_spatial_attn = SpatialAttention(mid, cfg.attn_heads, cfg.attn_dim_head)
        self.mid_temporal_attn = TemporalAttention(mid, cfg.attn_heads, cfg.attn_dim_head, rotary)
        self.mid_block2 = ResnetBlock(mid, mid, cfg.resnet_groups, cond_dim)
        self.ups = nn.ModuleList(
            Level(2 * b, a, cfg, cond_dim, rotary, self._upsample(a) if i < last else nn.Identity(), top=i == last)
            for i, (a, b) in enumerate(reversed(pairs)))
        self.flow_head = Head(2 * dim, dim, cfg.out_flow_channels, cfg.resnet_groups)
        self.occlusion_head = Head(2 * dim, dim, cfg.out_occlusion_channels, cfg.resnet_groups)

    def _upsample(self, dim: int) -> nn.Module:
        if self.cfg.use_deconv:
            return nn.ConvTranspose3d(dim, dim, (1, 4, 4), (1, 2, 2), (0, 1, 1))
        return NearestUpsample(dim, self.cfg.padding_mode)

    # ------------------------------------------------------------------ conditioning
    def encode_condition(self, z0: torch.Tensor) -> torch.Tensor:
        """z0 (B, C, h, w) -> its contribution to the first convolution, (B, dim, 1, h, w), once per video."""
        weight = self.init_conv.weight[:, self.channels:]                    # (dim, C, 1, k, k)
        return F.conv2d(z0, weight[:, :, 0], padding=self.init_kernel_padding)[:, :, None]

    @property
    def init_kernel_padding(self) -> int:
        return self.cfg.init_kernel_size // 2

    def condition_vector(self, t: torch.Tensor, text: torch.Tensor, use_null: Optional[torch.Tensor]) -> torch.Tensor:
        """cat(time MLP (B, 4*dim), text or null (B, text_dim)); ``use_null`` (B,) bool picks the null embedding."""
        if use_null is not None:
            text = torch.where(use_null[:, None], self.null_cond.to(text.dtype).expand_as(text), text)
        return torch.cat([self.time_mlp(t), text], dim=-1)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, t: torch.Tensor, *, text: torch.Tensor, z0_features: torch.Tensor,
                use_null: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, 3, K, h, w), t (B,), text (B, D), z0_features from ``encode_condition`` -> eps (B, 3, K, h, w)."""
        weight = self.init_conv.weight[:, :self.channels]
        pad = self.init_kernel_padding
        h = F.conv3d(x, weight, self.init_conv.bias, padding=(0, pad, pad)) + z0_features
        return self._body(h, t, text, use_null)

    def forward_concat(self, x: torch.Tensor, t: torch.Tensor, *, text: torch.Tensor, z0: torch.Tensor,
                       use_null: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The plain form: convolve cat(x, z0 repeated over K). Same function as ``forward``."""
        z = z0[:, :, None].expand(-1, -1, x.shape[2], -1, -1)
        return self._body(self.init_conv(torch.cat([x, z], dim=1)), t, text, use_null)

    def _body(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, use_null) -> torch.Tensor:
        bias = self.time_rel_pos_bias(x.shape[2], x.device)                # (heads, K, K)
        residual = x                       # the heads see the initial convolution before temporal attention
        x = self.init_temporal_attn(x, bias)
        cond = self.condition_vector(t, text, use_null)
        skips = []
        for level in self.downs:
            skip, x = level(x, cond, bias)
            skips.append(skip)
        x = self.mid_block1(x, cond)
        x = self.mid_temporal_attn(self.mid_spatial_attn(x), bias)
        x = self.mid_block2(x, cond)
        for level in self.ups:
            _, x = level(torch.cat([x, skips.pop()], dim=1), cond, bias)
        x = torch.cat([x, residual], dim=1)
        return torch.cat([self.flow_head(x), self.occlusion_head(x)], dim=1)
