"""Stage 2 on Ray Train: ``python -m ray_jobs.train_dm --config ray_jobs/configs/demo_dm.yaml``.

Trains on clips sampled from the flow cache. Label embeddings are computed once by the driver
(never by each worker). The final full model (auto-encoder + EMA U-Net + labels + embeddings) is
exported to OUTPUT/NAME/model.
"""
from __future__ import annotations

import sys

import torch

from lfdm.training import checkpoint as ckpt
from lfdm.training.dm_data import CachedClipDataset
from lfdm.training.dm_local import build_dm_state, check_cache, export_tensors, label_embeddings
from lfdm.training.dm_objective import dm_loss
from lfdm.training.flow_cache import load_cache, read_meta
from ray_jobs.common import job_argparser, load_job_config
from ray_jobs.train_common import Stage, fit


def build_stage(cfg, job, device, extra) -> Stage:
    labels = extra["labels"]
    text = torch.tensor(extra["text_embeddings"], dtype=torch.float32)
    videos = sorted(load_cache(job.flows, split="train").values(), key=lambda v: v.video_id)
    lfae, _ = ckpt.load_lfae(job.lfae, device=device)
    objective, state = build_dm_state(cfg, lfae, text, device)
    sc = cfg.train.dm

    def step_tensors():
        return {**ckpt.with_prefix("unet.", objective.unet.state_dict()), "text.embeddings": text}

    def restore(loaded: ckpt.Checkpoint) -> None:
        ckpt.load_state_strict(objective.unet, loaded.subset("unet."), "U-Net", loaded.uri)

    def export(uri: str) -> None:
        net = state.ema.shadow if state.ema is not None else objective.unet
        ckpt.save_checkpoint(uri, cfg, export_tensors(lfae, net, text), kind="lfdm", labels=labels,
                             extra={"stage": "dm", "step": state.step, "lfae": job.lfae, "flows": job.flows,
                                    "ema": state.ema is not None, "ray_job": job.name})

    dataset = CachedClipDataset(videos, cfg.data, seed=sc.seed, residual_flow=cfg.diffusion.residual_flow,
                                flow_scale=cfg.diffusion.flow_scale)
    return Stage(sc, objective, state, dataset, len(videos), dm_loss,
                 "dm-train", step_tensors, restore, export, tuple(labels))


def run(job, log=print) -> str:
    job.require("lfae", "flows")
    cfg = job.model_config()
    check_cache(cfg, job.lfae, job.flows)
    labels = list(read_meta(job.flows)["classes"])
    text = label_embeddings(cfg, labels)                 # once, by the driver
    result = fit(job, build_stage, extra={"labels": labels, "text_embeddings": text.tolist()})
    log(f"stage 2 finished: {result.metrics}")
    return job.model_uri


def main(argv=None) -> int:
    args = job_argparser("Train the conditional 3D U-Net diffusion model (stage 2) on Ray").parse_args(argv)
    print(f"model: {run(load_job_config(args.config, args.set, args.override))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
