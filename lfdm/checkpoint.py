"""Checkpoints: a directory (local or s3://) with ``config.json`` + ``model.safetensors``.

config.json holds the whole LFDMConfig, the kind ("lfae" for stage 1, "lfdm" for a full model),
the class-label list and free-form metadata. model.safetensors holds tensors under prefixes:
``lfae.`` (auto-encoder), ``unet.`` (stage-2 network), ``text.`` (label embeddings).
Training checkpoints add ``trainer_state.pt`` (optimiser, schedule, EMA, step), loaded with
weights_only=True. Each file is written atomically and config.json last (removed first when
overwriting), locally and on S3 alike: a config.json means a complete checkpoint.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lfdm.config import ConfigError, LFDMConfig, from_dict, to_dict
from lfdm.io import storage
from lfdm.models.autoencoder import LatentFlowAutoencoder

FORMAT = "lfdm-checkpoint"
VERSION = 1
CONFIG, WEIGHTS, TRAINER = "config.json", "model.safetensors", "trainer_state.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or does not match what the caller expects."""


@dataclass
class Checkpoint:
    uri: str
    config: LFDMConfig
    kind: str
    tensors: Dict[str, torch.Tensor]
    labels: List[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    weights_hash: str = ""           # of model.safetensors, as ``weights_hash(uri)`` gives it

    def subset(self, prefix: str) -> Dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def with_prefix(prefix: str, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def strip_module_prefix(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """(Distributed)DataParallel saves add ``module.`` to every name; drop it."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def exists(uri: str, with_trainer_state: bool = False) -> bool:
    """Complete: config.json and the weights (and, for a step checkpoint, the trainer state) are all there.
    ``save_checkpoint`` writes config.json last, but a copy of a finished folder (Ray Train uploading a step
    checkpoint to S3) writes its files in any order, and one killed midway can leave config.json alone."""
    names = (CONFIG, WEIGHTS, TRAINER) if with_trainer_state else (CONFIG, WEIGHTS)
    return all(storage.exists(storage.join(uri, name)) for name in names)


def save_checkpoint(uri: str, config: LFDMConfig, tensors: Dict[str, torch.Tensor], *, kind: str,
                    labels: Optional[List[str]] = None, extra: Optional[dict] = None,
                    trainer_state: Optional[dict] = None) -> None:
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "labels": list(labels or []),
            "extra": extra or {}, "config": to_dict(config)}
    weights = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    files = {WEIGHTS: weights}
    if trainer_state is not None:
        buf = io.BytesIO()
        torch.save(trainer_state, buf)
        files[TRAINER] = buf.getvalue()
    files[CONFIG] = json.dumps(meta, indent=2).encode()        # last: marks the checkpoint complete
    config_uri = storage.join(uri, CONFIG)
    if storage.exists(config_uri):       # overwriting: a crash midway leaves "incomplete", never mixed files
        storage.remove(config_uri)
    storage.makedirs(uri)
    for name, data in files.items():
        storage.write_bytes(storage.join(uri, name), data)


@dataclass
class CheckpointInfo:
    """What config.json says: enough for callers that need no tensor (image size, labels, kind)."""
    uri: str
    config: LFDMConfig
    kind: str
    labels: List[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


# Keys older checkpoints carry that no longer exist, with the only value they could hold (it is now implied).
RETIRED_KEYS = {("data", "eval_clip_sampling"): "uniform", ("diffusion", "schedule"): "cosine"}


def _without_retired_keys(config: dict, uri: str) -> dict:
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for (section, key), implied in RETIRED_KEYS.items():
        value = config.get(section, {}).pop(key, implied)
        if value != implied:
            raise CheckpointError(f"{uri}: {section}.{key}={value!r} is no longer supported (always {implied!r})")
    return config


def read_info(uri: str) -> CheckpointInfo:
    """config.json of a complete checkpoint, without reading its tensors."""
    config_uri = storage.join(uri, CONFIG)
    if not storage.exists(config_uri):
        what = "incomplete checkpoint (no config.json)" if storage.exists(uri) else "checkpoint not found"
        raise CheckpointError(f"{what}: {uri}")
    meta = json.loads(storage.read_text(config_uri))
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{uri} is not an lfdm checkpoint (format={meta.get('format')!r})")
    try:
        config = from_dict(LFDMConfig, _without_retired_keys(meta["config"], uri)).validate()
    except ConfigError as exc:
        raise CheckpointError(f"{uri}: config.json does not fit this version of lfdm: {exc}") from exc
    return CheckpointInfo(uri, config, meta["kind"], meta.get("labels", []), meta.get("extra", {}))


def read_checkpoint(uri: str) -> Checkpoint:
    info = read_info(uri)
    weights_uri = storage.join(uri, WEIGHTS)
    if not storage.exists(weights_uri):
        raise CheckpointError(f"incomplete checkpoint (no {WEIGHTS}): {uri}")
    data = storage.read_bytes(weights_uri)
    return Checkpoint(uri, info.config, info.kind, st_load(data), info.labels, info.extra, _digest(data))


def read_trainer_state(uri: str) -> Optional[dict]:
    path = storage.join(uri, TRAINER)
    if not storage.exists(path):
        return None
    return torch.load(io.BytesIO(storage.read_bytes(path)), map_location="cpu", weights_only=True)


def weights_hash(uri: str) -> str:
    """sha256 of model.safetensors (first 16 hex digits): identifies the weights a video came from."""
    return _digest(storage.read_bytes(storage.join(uri, WEIGHTS)))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def load_state_strict(module: torch.nn.Module, state: Dict[str, torch.Tensor], what: str, uri: str) -> None:
    """load_state_dict(strict) with an error that says what does not fit and why."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if mismatched:
            k = mismatched[0]
            details.append(f"{len(mismatched)} with other shapes (e.g. {k}: checkpoint "
                           f"{tuple(state[k].shape)} vs model {tuple(own[k].shape)})")
        raise CheckpointError(f"{uri}: {what} weights do not fit the model: {'; '.join(details)}")
    module.load_state_dict(state, strict=True)


def check_preset(ckpt: CheckpointInfo | Checkpoint, preset: Optional[str]) -> None:
    if preset is not None and ckpt.config.name != preset:
        raise CheckpointError(f"{ckpt.uri} was built with preset {ckpt.config.name!r}, not {preset!r}; "
                              f"drop --preset or pass --preset {ckpt.config.name}")


def load_lfae(uri: str, preset: Optional[str] = None, device: str | torch.device = "cpu"):
    """The stage-1 auto-encoder of a checkpoint (kind lfae or lfdm), in eval mode."""
    ckpt = uri if isinstance(uri, Checkpoint) else read_checkpoint(uri)
    check_preset(ckpt, preset)
    model = LatentFlowAutoencoder(ckpt.config.autoencoder)
    load_state_strict(model, ckpt.subset("lfae."), "auto-encoder", ckpt.uri)
    return model.to(device).eval(), ckpt
