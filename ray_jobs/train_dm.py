"""Stage 2 on Ray Train: ``python -m ray_jobs.train_dm --config ray_jobs/configs/demo_dm.yaml``.

Trains on clips sampled from the flow cache. The text conditions (labels, sentences, text map) are computed
once by the driver (never by each worker). The final full model (auto-encoder + EMA U-Net + labels + conditions)
is exported to OUTPUT/NAME/model.
"""
from __future__ import annotations

import sys

from lfdm.models.text import TextConditions
from lfdm.training.dm_stage import build_dm_stage, label_conditions
from ray_jobs.common import TrainJob, job_argparser, load_job_config
from ray_jobs.train_common import fit


def build_stage(cfg, job: TrainJob, device, extra):
    return build_dm_stage(cfg, job.lfae, job.flows, device, conditions=TextConditions.from_plain(extra["conditions"]))


def run(job: TrainJob, log=print) -> str:
    job.require("lfae", "flows")
    conditions = label_conditions(job.model_config(), job.lfae, job.flows)     # once, by the driver
    result = fit(job, build_stage, "dm", extra={"conditions": conditions.to_plain()})
    log(f"stage 2 finished: {result.metrics}")
    return job.model_uri


def main(argv=None) -> int:
    args = job_argparser("Train the conditional 3D U-Net diffusion model (stage 2) on Ray", training=True).parse_args(argv)
    print(f"model: {run(load_job_config(TrainJob, args.config, args.set, args.override))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
