"""Stage 1 on one machine: ``lfdm train lfae``.

Layout of OUT: config.json + model.safetensors (the exported model, written at the end),
train/step_NNNNNNN/ (resumable checkpoints), train/metrics.jsonl, train/samples/*.png.
A rerun with the same OUT resumes from the latest complete checkpoint.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from lfdm.config import LFDMConfig
from lfdm.data.datasets import FramePairDataset
from lfdm.data.manifest import read_manifest
from lfdm.io import storage
from lfdm.io.images import grid, save_png
from lfdm.io.seeding import seeded
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.training import checkpoint as ckpt
from lfdm.training.batching import step_batches
from lfdm.training.lfae_objective import LfaeObjective
from lfdm.training.loop import run_loop
from lfdm.training.optim import build_optimizer, build_scheduler
from lfdm.training.perceptual import FALLBACK_WARNING
from lfdm.training.steps import TrainState, lfae_loss

log = logging.getLogger(__name__)


def build_lfae_state(cfg: LFDMConfig, device: torch.device, *, init: Optional[str] = None,
                     decoder_only: bool = False):
    """(objective, train state) for stage 1, optionally starting from the weights of ``init``."""
    with seeded(cfg.train.lfae.seed, "init"):                  # reproducible runs start from the same weights
        model = LatentFlowAutoencoder(cfg.autoencoder)
    if init:
        ckpt.load_state_strict(model, ckpt.read_checkpoint(init).subset("lfae."), "auto-encoder", init)
    objective = LfaeObjective(model, cfg.train.lfae_loss, decoder_only=decoder_only).to(device)
    optimizer = build_optimizer(objective.parameters(), cfg.train.lfae)
    return objective, TrainState(objective, optimizer, build_scheduler(optimizer, cfg.train.lfae))


def lfae_checkpoint_tensors(objective: LfaeObjective):
    return ckpt.with_prefix("lfae.", objective.model.state_dict())


def save_lfae_samples(objective: LfaeObjective, batch: dict, uri: str, count: int = 4) -> None:
    """Rows of source | driving | prediction | occlusion for a few pairs of ``batch``."""
    was_training = objective.training
    objective.eval()
    with torch.no_grad():
        src, drv = batch["source"][:count], batch["driving"][:count]
        out = objective.model(src, drv)
    objective.train(was_training)
    size = src.shape[-1]
    rows = [[s, d, p, o] for s, d, p, o in zip(src, drv, out["prediction"], out["occlusion"])]
    save_png(uri, grid(rows, size))


def train_lfae_local(cfg: LFDMConfig, manifest_uri: str, out_uri: str, *, init: Optional[str] = None,
                     decoder_only: bool = False, device: Optional[str] = None,
                     max_minutes: Optional[float] = None, log_fn: Callable[[str], None] = print) -> str:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    stage = cfg.train.lfae
    run_uri = storage.join(out_uri, "train")
    records = read_manifest(manifest_uri).split("train").records
    if not records:
        raise ValueError(f"{manifest_uri} has no train-split videos")
    objective, state = build_lfae_state(cfg, device, init=init, decoder_only=decoder_only)
    if objective.reconstruction.uses_fallback:
        log_fn("!" * 100 + "\n" + FALLBACK_WARNING + "\n" + "!" * 100)
    existing = ckpt.training_checkpoints(run_uri)
    if existing:
        latest = existing[-1]
        ckpt.load_state_strict(objective.model, ckpt.read_checkpoint(latest).subset("lfae."), "auto-encoder", latest)
        state.load_trainer_state(ckpt.read_trainer_state(latest))
        log_fn(f"resuming stage 1 from {latest} (step {state.step})")
    extra = {"stage": "lfae", "decoder_only": decoder_only, "manifest": manifest_uri, "init": init}

    def save(final: bool) -> None:
        tensors = lfae_checkpoint_tensors(objective)
        ckpt.save_checkpoint(ckpt.step_dir(run_uri, state.step), cfg, tensors, kind="lfae",
                             extra={**extra, "step": state.step}, trainer_state=state.trainer_state())
        ckpt.prune_checkpoints(run_uri, keep=2)
        if final:
            ckpt.save_checkpoint(out_uri, cfg, tensors, kind="lfae", extra={**extra, "step": state.step})

    if state.step >= stage.steps and ckpt.exists(out_uri):
        log_fn(f"stage 1 already trained to step {state.step}: {out_uri}")
        return out_uri
    dataset = FramePairDataset(records, cfg.data, augment=True, seed=stage.seed)
    batches = step_batches(dataset, len(records), stage.batch_size, stage.seed, state.step, stage.steps,
                           num_workers=stage.loader_workers)
    sample = lambda batch: save_lfae_samples(  # noqa: E731
        objective, batch, storage.join(run_uri, "samples", f"step_{state.step:07d}.png"))
    run_loop(state, batches, lfae_loss, stage, device=device, metrics_uri=storage.join(run_uri, "metrics.jsonl"),
             save=save, sample=sample, max_seconds=None if max_minutes is None else 60 * max_minutes, log=log_fn)
    save(final=True)
    return out_uri
