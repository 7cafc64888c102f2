"""Stage 1 as a ``Stage``: the latent flow auto-encoder on frame pairs of the train split."""
from __future__ import annotations

from typing import Optional

import torch

from lfdm import checkpoint as ckpt
from lfdm.config import LFDMConfig
from lfdm.data.datasets import FramePairDataset
from lfdm.data.manifest import read_manifest
from lfdm.io.images import grid, save_png
from lfdm.io.seeding import seeded
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.training.collapse_guard import collapse_check
from lfdm.training.lfae_objective import LfaeObjective, lfae_loss
from lfdm.training.optim import build_optimizer, build_scheduler
from lfdm.training.perceptual import FALLBACK_WARNING
from lfdm.training.stage import Stage
from lfdm.training.steps import TrainState


def build_lfae_stage(cfg: LFDMConfig, manifest_uri: str, device: torch.device, *, init: Optional[str] = None,
                     decoder_only: bool = False) -> Stage:
    records = read_manifest(manifest_uri).split("train").records
    if not records:
        raise ValueError(f"{manifest_uri} has no train-split videos")
    sc = cfg.train.lfae
    with seeded(sc.seed, "init"):                                 # reproducible runs start from the same weights
        model = LatentFlowAutoencoder(cfg.autoencoder)
    if init:
        ckpt.load_state_strict(model, ckpt.read_checkpoint(init).subset("lfae."), "auto-encoder", init)
    objective = LfaeObjective(model, cfg.train.lfae_loss, decoder_only=decoder_only).to(device)
    optimizer = build_optimizer(objective.parameters(), sc)
    state = TrainState(objective, optimizer, build_scheduler(optimizer, sc))

    def step_tensors():
        return ckpt.with_prefix("lfae.", model.state_dict())

    def restore(loaded: ckpt.Checkpoint) -> None:
        ckpt.load_state_strict(model, loaded.subset("lfae."), "auto-encoder", loaded.uri)

    def export(uri: str, provenance: dict) -> None:
        ckpt.save_checkpoint(uri, cfg, step_tensors(), kind="lfae", extra=provenance)

    def sample(batch: dict, uri: str) -> None:
        save_lfae_samples(objective, batch, uri)

    notices = (("!" * 100 + "\n" + FALLBACK_WARNING + "\n" + "!" * 100),) if objective.reconstruction.uses_fallback else ()
    return Stage("lfae", cfg, objective, state, FramePairDataset(records, cfg.data, augment=True, seed=sc.seed),
                 len(records), lfae_loss, "lfae", step_tensors, restore, export, sample,
                 provenance={"stage": "lfae", "manifest": manifest_uri, "init": init, "decoder_only": decoder_only},
                 notices=notices, before_step=lambda step: objective.set_progress(step / sc.steps),
                 health=None if decoder_only else collapse_check(cfg.train.lfae_guard, sc.steps))


def save_lfae_samples(objective: LfaeObjective, batch: dict, uri: str, count: int = 4) -> None:
    """Rows of source | driving | prediction | occlusion for a few pairs of ``batch``."""
    was_training = objective.training
    objective.eval()
    with torch.no_grad():
        src, drv = batch["source"][:count], batch["driving"][:count]
        out = objective.model(src, drv)
    objective.train(was_training)
    rows = [[s, d, p, o] for s, d, p, o in zip(src, drv, out["prediction"], out["occlusion"])]
    save_png(uri, grid(rows, src.shape[-1]))
