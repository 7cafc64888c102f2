"""Import the official LFDM checkpoints (github.com/nihaomiao/CVPR23_LFDM) into our format.

LFAE file: top-level ``generator``, ``region_predictor``, ``bg_predictor`` state dicts; our modules
keep the official attribute names, so the import is a prefix mapping. Every official tensor must
land somewhere and every one of ours must be filled: anything else is an error naming the keys.
Files are read with ``torch.load(weights_only=True)``: no pickled code runs.
The imported auto-encoder uses the official sampling convention (align_corners=False).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import torch

from lfdm.config import LFDMConfig
from lfdm.checkpoint import CheckpointError, load_state_strict, save_checkpoint, strip_module_prefix, with_prefix

LFAE_PREFIXES = (
    ("generator.first.", "encoder.first."),
    ("generator.down_blocks.", "encoder.down_blocks."),
    ("generator.bottleneck.", "decoder.bottleneck."),
    ("generator.up_blocks.", "decoder.up_blocks."),
    ("generator.final.", "decoder.final."),
    ("generator.pixelwise_flow_predictor.", "flow_predictor."),
    ("region_predictor.", "region_predictor."),
    ("bg_predictor.", "bg_predictor."),
)
LFAE_TOP_KEYS = ("generator", "region_predictor", "bg_predictor")


def load_official_file(path: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # torch raises several types for non-checkpoint files
        raise CheckpointError(f"cannot read {path} as a weights-only torch file: {exc}") from exc


def map_official_lfae(raw: dict, source: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """Official LFAE checkpoint dict -> our LatentFlowAutoencoder state dict (names only)."""
    missing_top = [k for k in LFAE_TOP_KEYS if k not in raw]
    if missing_top:
        raise CheckpointError(f"{source} is not an official LFAE checkpoint: no {missing_top} "
                              f"(top-level keys: {sorted(raw)[:8]})")
    flat = {f"{top}.{k}": v for top in LFAE_TOP_KEYS for k, v in strip_module_prefix(raw[top]).items()}
    out, unmapped = {}, []
    for key, value in flat.items():
        for old, new in LFAE_PREFIXES:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise CheckpointError(f"{source}: {len(unmapped)} official tensors have no place in our model "
                              f"(e.g. {unmapped[:3]})")
    return out


def official_lfae_config(cfg: LFDMConfig) -> LFDMConfig:
    """The official behaviour our own training departs from: grid_sample's align_corners=False and the region
    affines of LAPACK's SVD (models/region.py)."""
    ae = cfg.autoencoder
    return dataclasses.replace(cfg, autoencoder=dataclasses.replace(
        ae, align_corners=False, region=dataclasses.replace(ae.region, pca="lapack")))


def import_official(cfg: LFDMConfig, out_uri: str, *, lfae_path: str, dm_path: Optional[str] = None,
                    labels=None, text_embeddings=None) -> str:
    """Write a checkpoint built from official files: kind ``lfae``, or ``lfdm`` with ``dm_path``."""
    from lfdm.models.autoencoder import LatentFlowAutoencoder
    cfg = official_lfae_config(cfg)
    lfae = LatentFlowAutoencoder(cfg.autoencoder)
    load_state_strict(lfae, map_official_lfae(load_official_file(lfae_path), lfae_path), "official LFAE", lfae_path)
    tensors = with_prefix("lfae.", lfae.state_dict())
    extra = {"imported_from": {"lfae": lfae_path}, "convention": "official (align_corners=False)"}
    if dm_path is None:
        save_checkpoint(out_uri, cfg, tensors, kind="lfae", extra=extra)
        return out_uri
    from lfdm.convert_dm import map_official_dm
    unet_state = map_official_dm(load_official_file(dm_path), cfg, dm_path)
    tensors.update(with_prefix("unet.", unet_state))
    extra["imported_from"]["dm"] = dm_path
    if labels is None or text_embeddings is None:
        raise CheckpointError("a full model needs the label list and its text embeddings")
    tensors["text.embeddings"] = text_embeddings
    save_checkpoint(out_uri, cfg, tensors, kind="lfdm", labels=labels, extra=extra)
    return out_uri
