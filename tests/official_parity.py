"""Seeded official-layout checkpoints and inputs, shared by the parity tests and by the script that ran the
official code on them (tests/fixtures/official_parity/make_official_outputs.py).

Weights are filled from the official names and shapes (tests/fixtures/official_keys) by a seeded rule that
keeps activations O(1): conv / linear weights ~ N(0, 1/fan_in), biases ~ N(0, 0.05^2), norm gains ~ 1 + N(0, 0.1^2),
BatchNorm running statistics plausible; deterministic buffers (diffusion schedule, rotary frequencies, anti-alias
kernel) take the official values. Everything depends only on (seed, tensor name): any machine rebuilds the same
checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict

import torch

KEYS = os.path.join(os.path.dirname(__file__), "fixtures", "official_keys")
OUTPUTS = os.path.join(os.path.dirname(__file__), "fixtures", "official_parity")
OFFICIAL_COMMIT = "3601635"               # nihaomiao/CVPR23_LFDM, the commit the outputs were computed with
UNET_CASES = {"mug128": "dm_mug128.json", "natops128": "dm_natops128.json"}
NUM_FRAMES = 16
TIMESTEPS = (0, 371, 999)                 # one per video of the U-Net batch
NULL_MASK = (False, True, False)          # the second video runs on the null condition
FEATURE_PROJECTION_DIM = 8                # encoder features (256 channels) are compared through a fixed projection


def _generator(seed: int, name: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def _deterministic() -> dict:
    with open(os.path.join(KEYS, "deterministic_buffers.json")) as f:
        return json.load(f)


def _fill(name: str, info: dict, seed: int, fixed: dict) -> torch.Tensor:
    shape, leaf, kind = info["shape"], name.rsplit(".", 1)[-1], info["module_type"]
    g = _generator(seed, name)
    if leaf in fixed.get("diffusion_buffers_timesteps1000", {}):
        return torch.tensor(fixed["diffusion_buffers_timesteps1000"][leaf], dtype=torch.float32)
    if leaf == "freqs":
        return torch.tensor(fixed["rotary_emb.freqs"], dtype=torch.float32)
    if kind == "AntiAliasInterpolation2d":
        kernel = torch.tensor(fixed["antialias_scale0.25_kernel2d"], dtype=torch.float32)
        return kernel.expand(*shape).clone()
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.int64)
    if leaf == "running_mean":
        return 0.1 * torch.randn(shape, generator=g)
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=g)
    if leaf in ("gamma",) or (leaf == "weight" and len(shape) == 1):
        return 1 + 0.1 * torch.randn(shape, generator=g)                  # norm gains
    if leaf == "bias" or len(shape) == 1:
        return 0.05 * torch.randn(shape, generator=g)
    fan_in = 1
    for n in shape[1:]:
        fan_in *= n
    return torch.randn(shape, generator=g) / fan_in ** 0.5


def seeded_state(spec_file: str, seed: int = 0) -> Dict[str, Dict[str, torch.Tensor]]:
    """{top-level key: state dict} in the official layout of ``spec_file`` (e.g. dm_mug128.json)."""
    with open(os.path.join(KEYS, spec_file)) as f:
        spec = json.load(f)
    fixed = _deterministic()
    return {top: {name: _fill(f"{top}.{name}", info, seed, fixed) for name, info in entries.items()}
            for top, entries in spec.items()}


def unet_inputs(seed: int = 1) -> Dict[str, torch.Tensor]:
    """x_t (3, 3, K, 32, 32), z0 (3, 256, 32, 32), text condition (3, 768), t (3,), null mask (3,)."""
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(3, 3, NUM_FRAMES, 32, 32, generator=g), "z0": torch.randn(3, 256, 32, 32, generator=g),
            "cond": torch.randn(3, 768, generator=g), "t": torch.tensor(TIMESTEPS),
            "null": torch.tensor(NULL_MASK)}


def lfae_inputs(seed: int = 2) -> Dict[str, torch.Tensor]:
    """A source and a driving frame per video (2, 3, 128, 128) in [0, 1], the driving one a shifted, brightened
    copy with noise, so regions and flows move."""
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(2, 3, 128, 128, generator=g)
    source = torch.nn.functional.avg_pool2d(source, 5, 1, 2)                  # some spatial structure
    driving = (torch.roll(source, shifts=(6, -4), dims=(-2, -1)) * 1.1 + 0.02 * torch.rand(2, 3, 128, 128, generator=g))
    return {"source": source, "driving": driving.clamp(0, 1)}


def feature_projection(channels: int = 256) -> torch.Tensor:
    return torch.randn(channels, FEATURE_PROJECTION_DIM, generator=torch.Generator().manual_seed(3)) / channels ** 0.5


def project(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, 8, h, w): compared instead of the whole feature map to keep the fixture small."""
    return torch.einsum("bchw,cd->bdhw", features, feature_projection(features.shape[1]))
