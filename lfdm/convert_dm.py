"""Official stage-2 checkpoint (key ``diffusion``: GaussianDiffusion with ``denoise_fn`` = Unet3D) -> UNet3D.

The official module tree wraps layers in Residual / PreNorm / EinopsToAndFrom and indexes them in
lists; ours names them. The rules below rewrite each official name; the schedule buffers
(betas, alphas_cumprod, ...) and the rotary frequencies (deterministic, shared by all temporal
attentions) are recomputed by our modules, checked equal, and not stored.
"""
from __future__ import annotations

import re
from typing import Dict

import torch

from lfdm.config import LFDMConfig
from lfdm.checkpoint import CheckpointError, strip_module_prefix

LEVEL_PARTS = {"0": "res1", "1": "res2", "2": "spatial_attn", "3": "temporal_attn", "4": "resample"}
RULES = [
    (r"^(downs|ups)\.(\d+)\.([0-4])\.(.*)$", lambda m: f"{m[1]}.{m[2]}.{LEVEL_PARTS[m[3]]}.{m[4]}"),
    (r"^(.*)\.fn\.fn\.fn\.(to_qkv|to_out)\.(.*)$", lambda m: f"{m[1]}.attn.{m[2]}.{m[3]}"),
    (r"^(.*)\.fn\.fn\.(to_qkv|to_out)\.(.*)$", lambda m: f"{m[1]}.attn.{m[2]}.{m[3]}"),
    (r"^(.*)\.fn\.norm\.gamma$", lambda m: f"{m[1]}.norm.gamma"),
    (r"^(.*)\.mlp\.1\.(weight|bias)$", lambda m: f"{m[1]}.film.{m[2]}"),
    (r"^time_mlp\.1\.(.*)$", lambda m: f"time_mlp.linear1.{m[1]}"),
    (r"^time_mlp\.3\.(.*)$", lambda m: f"time_mlp.linear2.{m[1]}"),
    (r"^final_conv\.0\.(.*)$", lambda m: f"flow_head.block.{m[1]}"),
    (r"^final_conv\.1\.(.*)$", lambda m: f"flow_head.out.{m[1]}"),
    (r"^occlusion_map\.0\.(.*)$", lambda m: f"occlusion_head.block.{m[1]}"),
    (r"^occlusion_map\.1\.(.*)$", lambda m: f"occlusion_head.out.{m[1]}"),
    (r"^(ups\.\d+\.resample)\.1\.(weight|bias)$", lambda m: f"{m[1]}.conv.{m[2]}"),
    (r"^null_cond_emb$", lambda m: "null_cond"),
]
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")


def rename(key: str) -> str:
    """Apply every rule whose pattern matches, repeatedly, until the name stops changing."""
    changed = True
    while changed:
        changed = False
        for pattern, repl in RULES:
            m = re.match(pattern, key)
            if m:
                new = repl(m)
                if new != key:
                    key, changed = new, True
    return key


def map_official_dm(raw: dict, cfg: LFDMConfig, source: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """-> UNet3D state dict. Schedule buffers are verified against ours, then dropped."""
    from lfdm.diffusion.schedule import cosine_schedule
    from lfdm.models.attention import RotaryEmbedding
    from lfdm.models.unet3d import UNet3D
    if "diffusion" not in raw:
        raise CheckpointError(f"{source} is not an official DM checkpoint: no 'diffusion' key "
                              f"(top-level keys: {sorted(raw)[:8]})")
    state = strip_module_prefix(raw["diffusion"])
    ours = cosine_schedule(cfg.diffusion).official_buffers()
    freqs = RotaryEmbedding(min(32, cfg.unet.attn_dim_head)).freqs
    out = {}
    for key, value in state.items():
        if key in SCHEDULE_BUFFERS:
            if not torch.allclose(value.float(), ours[key], rtol=1e-5, atol=1e-6):
                raise CheckpointError(f"{source}: buffer {key} differs from our cosine schedule")
            continue
        if key.endswith("rotary_emb.freqs"):
            if not torch.allclose(value.float(), freqs, atol=1e-7):
                raise CheckpointError(f"{source}: rotary frequencies of {key} differ from ours")
            continue
        if not key.startswith("denoise_fn."):
            raise CheckpointError(f"{source}: unexpected tensor {key!r} outside denoise_fn")
        out[rename(key[len("denoise_fn."):])] = value
    model = UNet3D(cfg.unet)
    if "null_cond" not in out and not cfg.unet.learn_null_cond:
        out["null_cond"] = torch.zeros_like(model.null_cond)   # official: unregistered zeros on cuda:0
    return out
