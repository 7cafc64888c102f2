"""Stage 2 as a ``Stage``: the conditional 3D U-Net on clips sampled from the flow cache.

The labels come from the cache and the text embeddings of their sentences are computed once, by whoever builds
the run (``label_conditions``), never by every worker. The final model is a full generation checkpoint (kind
"lfdm": frozen auto-encoder, EMA U-Net weights, labels, their conditions and the text map), written by the
pipeline.
"""
from __future__ import annotations

from typing import Sequence

import torch

from lfdm import checkpoint as ckpt
from lfdm.config import LFDMConfig
from lfdm.diffusion.parameterisation import Prediction
from lfdm.diffusion.schedule import cosine_schedule
from lfdm.data.phrasings import phrasings_for
from lfdm.io.images import grid, save_png
from lfdm.io.seeding import seeded
from lfdm.models.text import TextConditions, run_conditions
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import SENTENCES, ImageToVideoPipeline
from lfdm.training.dm_data import CachedClipDataset, motion_balance_weights
from lfdm.training.dm_objective import DmObjective, dm_loss
from lfdm.training.ema import EMA
from lfdm.training.flow_cache import FlowCacheError, VideoFlows, check_cache, load_cache
from lfdm.training.optim import build_optimizer, build_scheduler
from lfdm.training.stage import Stage
from lfdm.training.steps import TrainState


def label_conditions(cfg: LFDMConfig, lfae_uri: str, flows_uri: str) -> TextConditions:
    """The conditions of a run's labels and sentences, after checking the cache fits the auto-encoder."""
    labels = list(check_cache(cfg, lfae_uri, flows_uri)["classes"])
    return run_conditions(cfg.text, labels, cfg.unet.text_dim, phrasings_for(cfg.text.phrasings, labels))


def build_dm_stage(cfg: LFDMConfig, lfae_uri: str, flows_uri: str, device: torch.device, *,
                   conditions: TextConditions) -> Stage:
    videos = sorted(load_cache(flows_uri, split="train").values(), key=lambda v: v.video_id)
    if not videos:
        raise FlowCacheError(f"flow cache {flows_uri} has no train-split videos")
    lfae, _ = ckpt.load_lfae(lfae_uri, device=device)
    sc, d = cfg.train.dm, cfg.diffusion
    with seeded(sc.seed, "init"):                                 # reproducible runs start from the same weights
        unet = UNet3D(cfg.unet)
    jitter = cfg.data.clip_jitter if cfg.data.clip_color_jitter else None
    objective = DmObjective(unet, Prediction(d.prediction, cosine_schedule(d)), conditions.label_embeddings,
                            d.cond_drop_prob, encoder=lfae.encoder if jitter else None, jitter=jitter,
                            min_snr_gamma=d.min_snr_gamma if d.loss_weighting == "min_snr" else None,
                            phrasings=(conditions.phrasing_embeddings, conditions.phrasing_classes),
                            condition_noise=conditions.condition_noise(cfg.text.condition_noise),
                            class_weights=motion_balance_weights(videos, len(conditions.labels), d.motion_balance,
                                                                 d.residual_flow, d.flow_scale)
                            if d.motion_balance else None).to(device)
    optimizer = build_optimizer(unet.parameters(), sc)
    ema = EMA(unet, sc.ema_decay) if sc.ema_decay else None
    state = TrainState(objective, optimizer, build_scheduler(optimizer, sc), ema=ema, ema_source=unet)
    labels, text_map = tuple(conditions.labels), conditions.text_map

    def network() -> UNet3D:
        return state.ema.shadow if state.ema is not None else unet

    def pipeline() -> ImageToVideoPipeline:
        sentences = (objective.phrasing_embeddings, conditions.phrasing_classes) if objective.phrasings else None
        return ImageToVideoPipeline(cfg, lfae, network(), labels, objective.text_embeddings, text_map=text_map,
                                    sentences=sentences)

    def step_tensors():
        sentences = {SENTENCES: objective.phrasing_embeddings} if objective.phrasings else {}
        return {**ckpt.with_prefix("unet.", unet.state_dict()), "text.embeddings": objective.text_embeddings,
                **sentences}

    def restore(loaded: ckpt.Checkpoint) -> None:
        ckpt.load_state_strict(unet, loaded.subset("unet."), "U-Net", loaded.uri)
        objective.text_embeddings.copy_(loaded.tensors["text.embeddings"])     # exactly the run's conditions
        if objective.phrasings and SENTENCES in loaded.tensors:
            objective.phrasing_embeddings.copy_(loaded.tensors[SENTENCES])

    def export(uri: str, provenance: dict) -> None:
        pipeline().save(uri, extra={**provenance, "ema": state.ema is not None})

    def sample(batch: dict, uri: str) -> None:
        save_dm_samples(pipeline(), videos[:2], uri)

    dataset = CachedClipDataset(videos, cfg.data, seed=sc.seed, residual_flow=d.residual_flow,
                                flow_scale=d.flow_scale, keyframe_stride=d.keyframe_stride)
    return Stage("dm", cfg, objective, state, dataset, len(videos), dm_loss, "dm-train", step_tensors, restore,
                 export, sample, labels=labels, provenance={"stage": "dm", "lfae": lfae_uri, "flows": flows_uri})


def save_dm_samples(pipe: ImageToVideoPipeline, videos: Sequence[VideoFlows], uri: str) -> None:
    """Two short videos generated from cached frame-0s with their own labels (DDIM-10): rows of frames."""
    was_training = pipe.unet.training
    images = torch.stack([torch.from_numpy(v.frame0).permute(2, 0, 1).float() / 255 for v in videos]).to(pipe.device)
    out = pipe(images, [pipe.labels[v.label] for v in videos], seeds=list(range(len(videos))),
               sampler="ddim", steps=10, eta=0.0)
    pipe.unet.train(was_training)
    k = out.frames.shape[2]
    picks = sorted({0, k // 3, 2 * k // 3, k - 1})
    save_png(uri, grid([[video[:, i] for i in picks] for video in out.frames], images.shape[-1]))
