"""Stage 2 on one machine: ``lfdm train dm``.

Trains the conditional 3D U-Net on clips sampled from the flow cache. OUT receives the full
generation checkpoint (kind "lfdm": frozen auto-encoder, EMA U-Net weights, label list and text
embeddings) at the end; OUT/train holds resumable step checkpoints, metrics and samples.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch

from lfdm.config import ConfigError, LFDMConfig
from lfdm.diffusion.schedule import cosine_schedule
from lfdm.io import storage
from lfdm.io.images import grid, save_png
from lfdm.io.seeding import seeded
from lfdm.models.text import embed_labels, whiten_label_embeddings
from lfdm.models.unet3d import UNet3D
from lfdm.training import checkpoint as ckpt
from lfdm.training.batching import step_batches
from lfdm.training.dm_data import CachedClipDataset
from lfdm.training.dm_objective import DmObjective, dm_loss
from lfdm.training.ema import EMA
from lfdm.training.flow_cache import FlowCacheError, load_cache, read_meta
from lfdm.training.loop import run_loop
from lfdm.training.optim import build_optimizer, build_scheduler
from lfdm.training.steps import TrainState


def label_embeddings(cfg: LFDMConfig, labels: List[str]) -> torch.Tensor:
    emb = embed_labels(labels, cfg.text.encoder, cfg.text.max_length)
    if emb.shape[1] != cfg.unet.text_dim:
        raise ConfigError(f"text encoder {cfg.text.encoder!r} gives {emb.shape[1]}-d embeddings but "
                          f"unet.text_dim={cfg.unet.text_dim}; set unet.text_dim={emb.shape[1]}")
    return whiten_label_embeddings(emb) if cfg.text.whiten else emb


def check_cache(cfg: LFDMConfig, lfae_uri: str, flows_uri: str) -> dict:
    meta = read_meta(flows_uri)
    if meta["lfae_hash"] != ckpt.weights_hash(lfae_uri):
        raise FlowCacheError(f"flow cache {flows_uri} was computed by another auto-encoder than {lfae_uri}; "
                             f"recompute it with `lfdm flows precompute --lfae {lfae_uri}`")
    if meta["image_size"] != cfg.data.image_size:
        raise FlowCacheError(f"flow cache frames are {meta['image_size']}px but the preset uses "
                             f"{cfg.data.image_size}px")
    return meta


def build_dm_state(cfg: LFDMConfig, lfae, text_embeddings: torch.Tensor, device: torch.device):
    with seeded(cfg.train.dm.seed, "init"):                    # reproducible runs start from the same weights
        unet = UNet3D(cfg.unet)
    jitter = cfg.data.clip_jitter if cfg.data.clip_color_jitter else None
    d = cfg.diffusion
    objective = DmObjective(unet, cosine_schedule(d), text_embeddings, d.cond_drop_prob,
                            encoder=lfae.encoder if jitter else None, jitter=jitter,
                            min_snr_gamma=d.min_snr_gamma if d.loss_weighting == "min_snr" else None,
                            prediction=d.prediction).to(device)
    stage = cfg.train.dm
    optimizer = build_optimizer(unet.parameters(), stage)
    ema = EMA(unet, stage.ema_decay) if stage.ema_decay else None
    state = TrainState(objective, optimizer, build_scheduler(optimizer, stage), ema=ema, ema_source=unet)
    return objective, state


def export_tensors(lfae, unet: torch.nn.Module, text_embeddings: torch.Tensor):
    tensors = ckpt.with_prefix("lfae.", lfae.state_dict())
    tensors.update(ckpt.with_prefix("unet.", unet.state_dict()))
    tensors["text.embeddings"] = text_embeddings.cpu()
    return tensors


def save_dm_samples(cfg, lfae, unet, labels, text_embeddings, videos, uri: str) -> None:
    """Two short videos generated from cached frame-0s with their own labels (DDIM-10): rows of frames."""
    from lfdm.pipelines.image_to_video import ImageToVideoPipeline
    device = next(unet.parameters()).device
    pipe = ImageToVideoPipeline(cfg, lfae, unet, labels, text_embeddings.to(device))
    images = torch.stack([torch.from_numpy(v.frame0).permute(2, 0, 1).float() / 255 for v in videos]).to(device)
    out = pipe(images, [labels[v.label] for v in videos], seeds=list(range(len(videos))),
               sampler="ddim", steps=10)
    k = out.frames.shape[2]
    picks = sorted({0, k // 3, 2 * k // 3, k - 1})
    save_png(uri, grid([[video[:, i] for i in picks] for video in out.frames], images.shape[-1]))


def train_dm_local(cfg: LFDMConfig, lfae_uri: str, flows_uri: str, out_uri: str, *, device: Optional[str] = None,
                   max_minutes: Optional[float] = None, log_fn: Callable[[str], None] = print) -> str:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    stage = cfg.train.dm
    run_uri = storage.join(out_uri, "train")
    meta = check_cache(cfg, lfae_uri, flows_uri)
    labels = list(meta["classes"])
    videos = sorted(load_cache(flows_uri, split="train").values(), key=lambda v: v.video_id)
    if not videos:
        raise FlowCacheError(f"flow cache {flows_uri} has no train-split videos")
    lfae, _ = ckpt.load_lfae(lfae_uri, device=device)
    existing = ckpt.training_checkpoints(run_uri)
    latest = ckpt.read_checkpoint(existing[-1]) if existing else None
    text = latest.tensors["text.embeddings"] if latest else label_embeddings(cfg, labels)
    objective, state = build_dm_state(cfg, lfae, text, device)
    if latest:
        ckpt.load_state_strict(objective.unet, latest.subset("unet."), "U-Net", latest.uri)
        state.load_trainer_state(ckpt.read_trainer_state(latest.uri))
        log_fn(f"resuming stage 2 from {latest.uri} (step {state.step})")
    extra = {"stage": "dm", "lfae": lfae_uri, "flows": flows_uri}

    def save(final: bool) -> None:
        tensors = ckpt.with_prefix("unet.", objective.unet.state_dict())
        tensors["text.embeddings"] = text
        ckpt.save_checkpoint(ckpt.step_dir(run_uri, state.step), cfg, tensors, kind="dm-train", labels=labels,
                             extra={**extra, "step": state.step}, trainer_state=state.trainer_state())
        ckpt.prune_checkpoints(run_uri, keep=2)
        if final:
            net = state.ema.shadow if state.ema is not None else objective.unet
            ckpt.save_checkpoint(out_uri, cfg, export_tensors(lfae, net, text), kind="lfdm", labels=labels,
                                 extra={**extra, "step": state.step, "ema": state.ema is not None})

    if state.step >= stage.steps and ckpt.exists(out_uri):
        log_fn(f"stage 2 already trained to step {state.step}: {out_uri}")
        return out_uri
    dataset = CachedClipDataset(videos, cfg.data, seed=stage.seed, residual_flow=cfg.diffusion.residual_flow,
                                flow_scale=cfg.diffusion.flow_scale)
    batches = step_batches(dataset, len(videos), stage.batch_size, stage.seed, state.step, stage.steps,
                           num_workers=stage.loader_workers)
    sample = lambda batch: save_dm_samples(  # noqa: E731
        cfg, lfae, state.ema.shadow if state.ema else objective.unet, labels, text, videos[:2],
        storage.join(run_uri, "samples", f"step_{state.step:07d}.png"))
    run_loop(state, batches, dm_loss, stage, device=device, metrics_uri=storage.join(run_uri, "metrics.jsonl"),
             save=save, sample=sample, max_seconds=None if max_minutes is None else 60 * max_minutes, log=log_fn)
    save(final=True)
    return out_uri
