"""Stage 1 on Ray Train: ``python -m ray_jobs.train_lfae --config ray_jobs/configs/demo_lfae.yaml``.

The final auto-encoder is exported to OUTPUT/NAME/model in the project's checkpoint format.
"""
from __future__ import annotations

import sys

from lfdm.data.datasets import FramePairDataset
from lfdm.data.manifest import read_manifest
from lfdm.training import checkpoint as ckpt
from lfdm.training.lfae_local import build_lfae_state, lfae_checkpoint_tensors
from lfdm.training.steps import lfae_loss
from ray_jobs.common import job_argparser, load_job_config
from ray_jobs.train_common import Stage, fit


def build_stage(cfg, job, device, extra) -> Stage:
    records = read_manifest(job.data).split("train").records
    objective, state = build_lfae_state(cfg, device, init=extra.get("init"))
    sc = cfg.train.lfae

    def restore(loaded: ckpt.Checkpoint) -> None:
        ckpt.load_state_strict(objective.model, loaded.subset("lfae."), "auto-encoder", loaded.uri)

    def export(uri: str) -> None:
        ckpt.save_checkpoint(uri, cfg, lfae_checkpoint_tensors(objective), kind="lfae",
                             extra={"stage": "lfae", "step": state.step, "manifest": job.data, "ray_job": job.name})

    return Stage(sc, objective, state, FramePairDataset(records, cfg.data, augment=True, seed=sc.seed), len(records),
                 lfae_loss, "lfae", lambda: lfae_checkpoint_tensors(objective), restore, export)


def run(job, log=print) -> str:
    result = fit(job.require("data"), build_stage)
    log(f"stage 1 finished: {result.metrics}")
    return job.model_uri


def main(argv=None) -> int:
    args = job_argparser("Train the latent flow auto-encoder (stage 1) on Ray").parse_args(argv)
    print(f"model: {run(load_job_config(args.config, args.set, args.override))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
