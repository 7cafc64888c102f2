"""Stage 1 on Ray Train: ``python -m ray_jobs.train_lfae --config ray_jobs/configs/demo_lfae.yaml``.

The final auto-encoder is exported to OUTPUT/NAME/model in the project's checkpoint format.
"""
from __future__ import annotations

import sys

from lfdm.training.collapse_guard import TrainingStopped, stopped_reason
from lfdm.training.lfae_stage import build_lfae_stage
from ray_jobs.common import TrainJob, job_argparser, load_job_config
from ray_jobs.train_common import fit


def build_stage(cfg, job: TrainJob, device, extra):
    return build_lfae_stage(cfg, job.data, device, init=job.init)


def run(job: TrainJob, log=print) -> str:
    """-> the exported model's uri; raises TrainingStopped when stage 1's guard stopped the run (no model)."""
    result = fit(job.require("data"), build_stage, "lfae")
    stopped = stopped_reason(job.run_uri)
    if stopped is not None:
        raise TrainingStopped(stopped)
    log(f"stage 1 finished: {result.metrics}")
    return job.model_uri


def main(argv=None) -> int:
    args = job_argparser("Train the latent flow auto-encoder (stage 1) on Ray", training=True).parse_args(argv)
    print(f"model: {run(load_job_config(TrainJob, args.config, args.set, args.override))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
