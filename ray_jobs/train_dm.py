"""Stage 2 on Ray Train: ``python -m ray_jobs.train_dm --config ray_jobs/configs/demo_dm.yaml``.

Trains on clips sampled from the flow cache. Label embeddings are computed once by the driver
(never by each worker). The final full model (auto-encoder + EMA U-Net + labels + embeddings) is
exported to OUTPUT/NAME/model.
"""
from __future__ import annotations

import sys

import torch

from lfdm.training.dm_stage import build_dm_stage, label_conditions
from ray_jobs.common import TrainJob, job_argparser, load_job_config
from ray_jobs.train_common import fit


def build_stage(cfg, job: TrainJob, device, extra):
    return build_dm_stage(cfg, job.lfae, job.flows, device, labels=extra["labels"],
                          text_embeddings=torch.tensor(extra["text_embeddings"], dtype=torch.float32))


def run(job: TrainJob, log=print) -> str:
    job.require("lfae", "flows")
    labels, text = label_conditions(job.model_config(), job.lfae, job.flows)     # once, by the driver
    result = fit(job, build_stage, "dm", extra={"labels": labels, "text_embeddings": text.tolist()})
    log(f"stage 2 finished: {result.metrics}")
    return job.model_uri


def main(argv=None) -> int:
    args = job_argparser("Train the conditional 3D U-Net diffusion model (stage 2) on Ray", training=True).parse_args(argv)
    print(f"model: {run(load_job_config(TrainJob, args.config, args.set, args.override))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
