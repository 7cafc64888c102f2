"""Stage 1 until it learns the motion: a run stopped by its collapse guard (train.lfae_guard) is trained again from
another seed, in a run of its own, up to ATTEMPTS runs in all.

Which run is used follows from what lies on disk, so a demo killed and started again goes on where it was: a run
with a model is used, a run with stopped.json is passed over, any other is (re)started or resumed.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from lfdm.checkpoint import exists as checkpoint_exists
from lfdm.runs import RunError
from lfdm.training.collapse_guard import TrainingStopped, stopped_reason
from ray_jobs.common import TrainJob

ATTEMPTS = 3
SEED_STRIDE = 1000                     # attempt a trains from train.lfae.seed + a * SEED_STRIDE
TITLE = "stage 1: latent flow auto-encoder on Ray Train"


def attempt_job(job: TrainJob, attempt: int) -> TrainJob:
    """Attempt 0 is ``job`` itself; attempt a > 0 its copy NAME_retryA with another seed."""
    if attempt == 0:
        return job
    seed = job.model_config().train.lfae.seed + attempt * SEED_STRIDE
    return dataclasses.replace(job, name=f"{job.name}_retry{attempt}",
                               overrides={**job.overrides, "train.lfae.seed": seed})


def train_until_healthy(job: TrainJob, train: Callable[[TrainJob], object], stage, log: Callable[[str], None]) -> TrainJob:
    """-> the job whose model is stage 1's. ``train(job)`` trains one run (raising TrainingStopped when its guard
    stops it); ``stage(title, skip, run)`` times and announces it (the demo's Timer)."""
    reasons = []
    for attempt in range(ATTEMPTS):
        this = attempt_job(job, attempt)
        reason = stopped_reason(this.run_uri)
        if reason is None:
            title = TITLE if attempt == 0 else f"{TITLE}, attempt {attempt + 1} ({this.name}, " \
                f"train.lfae.seed={this.model_config().train.lfae.seed})"
            try:
                stage(title, checkpoint_exists(this.model_uri), lambda: train(this))
                return this
            except TrainingStopped as stopped:
                reason = str(stopped)
        reasons.append(f"{this.name}: {reason}")
        log("\n" + "!" * 100 + f"\n{reason}\n" + ("Training stage 1 again from another seed." if attempt + 1 < ATTEMPTS
                                                  else "") + "\n" + "!" * 100)
    raise RunError(f"stage 1 stopped {ATTEMPTS} times without learning the motion:\n" + "\n".join(reasons))
