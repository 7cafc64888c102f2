"""Attention layers of the stage-2 U-Net (video diffusion lineage: Ho et al. 2022; LFDM official code).

- TemporalAttention: per spatial position, full softmax attention over the K frames, rotary
  embedding on q and k plus a shared T5 relative position bias.
- SpatialLinearAttention: per frame, linear attention (q softmax over features, k over positions).
- SpatialAttention: per frame, full softmax attention over positions (middle of the U-Net).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of (B, C, K, H, W), gain only (no bias)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The fused kernel over a channels-last view is 2x faster on CPU than var_mean over the strided
        # dim 1; the result is made contiguous again, else the next 1x1 conv produces channels-last weight
        # gradients that DDP's buckets reject.
        gain = self.gamma.view(-1).to(x.dtype)
        return F.layer_norm(x.movedim(1, -1), gain.shape, gain, None, self.eps).movedim(-1, 1).contiguous()


class RotaryEmbedding(nn.Module):
    """Rotary position embedding on interleaved feature pairs (RoFormer, Su et al. 2021)."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        # deterministic and shared by every temporal attention: rebuilt on construction, not saved
        self.register_buffer("freqs", 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim),
                             persistent=False)

    def _tables(self, n: int, device, dtype):
        key = (n, str(device), dtype)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            angles = torch.arange(n, device=device, dtype=self.freqs.dtype)[:, None] * self.freqs.to(device)
            angles = angles.repeat_interleave(2, dim=-1)                                      # (n, d)
            cache[key] = (angles.cos().to(dtype), angles.sin().to(dtype))
        return cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., n, d): rotate the first 2*len(freqs) features by position along n."""
        cos, sin = self._tables(x.shape[-2], x.device, x.dtype)
        rot = cos.shape[-1]
        head = x[..., :rot]
        pairs = head.unflatten(-1, (-1, 2))
        rotated_half = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        out = head * cos + rotated_half * sin
        return out if rot == x.shape[-1] else torch.cat([out, x[..., rot:]], dim=-1)


class RelativePositionBias(nn.Module):
    """T5 relative position bias, bucketed (Raffel et al. 2020): (heads, n, n), shared across layers."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 32):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        n = -relative
        half = self.num_buckets // 2
        ret = (n < 0).long() * half
        n = n.abs()
        max_exact = half // 2
        large = max_exact + (torch.log(n.float() / max_exact) / math.log(self.max_distance / max_exact)
                             * (half - max_exact)).long()
        large = torch.clamp(large, max=half - 1)
        return ret + torch.where(n < max_exact, n, large)

    def forward(self, n: int, device) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.long, device=device)
        values = self.relative_attention_bias(self.bucket(pos[None, :] - pos[:, None]))   # (n, n, heads)
        return values.permute(2, 0, 1)


class Attention(nn.Module):
    """Softmax attention over the second-to-last axis of (..., n, dim)."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary: RotaryEmbedding | None = None):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.rotary = rotary

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (rearrange(t, "... n (h d) -> ... h n d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        # Written out rather than scaled_dot_product_attention, with the scores and softmax in fp32 under
        # bf16 autocast too: for these 5-D, short sequences (the frames, or a small map's positions) SDPA took
        # its reference path anyway, there with a bf16 softmax. Speed: within the machine's noise (benchmarks).
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * self.scale         # (..., h, n, n)
        if bias is not None:
            scores = scores + bias.float()
        out = torch.matmul(scores.softmax(dim=-1).to(v.dtype), v)
        return self.to_out(rearrange(out, "... h n d -> ... n (h d)"))


class TemporalAttention(nn.Module):
    """Pre-norm residual attention across frames: x + attn_t(norm(x)), x (B, C, K, H, W)."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary: RotaryEmbedding):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, rotary)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, c, k, h, w = x.shape
        seq = rearrange(self.norm(x), "b c k h w -> b (h w) k c")
        out = rearrange(self.attn(seq, bias), "b (h w) k c -> b c k h w", h=h, w=w)
        return x + out


class SpatialAttention(nn.Module):
    """Pre-norm residual full attention over the positions of each frame."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, k, h, w = x.shape
        seq = rearrange(self.norm(x), "b c k h w -> b k (h w) c")
        return x + rearrange(self.attn(seq), "b k (h w) c -> b c k h w", h=h, w=w)


class SpatialLinearAttention(nn.Module):
    """Pre-norm residual linear attention over the positions of each frame (Shen et al. 2021)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.attn = _LinearAttention(dim, heads, dim_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))


class _LinearAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Conv2d(dim, 3 * heads * dim_head, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dim_head, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, k, h, w = x.shape
        frames = rearrange(x, "b c k h w -> (b k) c h w")
        q, key, v = (rearrange(t, "n (h d) x y -> n h d (x y)", h=self.heads)
                     for t in self.to_qkv(frames).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        key = key.softmax(dim=-1)
        context = torch.einsum("nhdp,nhep->nhde", key, v)
        out = torch.einsum("nhde,nhdp->nhep", context, q)
        out = self.to_out(rearrange(out, "n h e (x y) -> n (h e) x y", x=h, y=w))
        return rearrange(out, "(b k) c h w -> b c k h w", b=b)
