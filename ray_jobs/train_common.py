"""Ray Train V2 for both training stages: lfdm's one training loop with Ray's four touch points as hooks.

Data: every worker reads its share of the same global batch from a step-seeded sampler
(lfdm.training.batching) rather than Ray Data streaming: batches are a pure function of the step,
so a resumed run replays exactly the batches an uninterrupted one would see, and the global batch
is the preset's whatever the number of workers. Per-worker batch = global / workers; gradient
accumulation splits it further into ``train.<stage>.grad_accum`` micro-batches.
Step checkpoints are Ray's, named like local ones (OUTPUT/NAME/step_NNNNNNN); the final model goes to
OUTPUT/NAME/model.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable, Dict, Iterator, Optional

import pyarrow.fs
import torch
from torch import nn

from lfdm.config import LFDMConfig, from_dict, to_dict
from lfdm.io import storage
from lfdm.training.run import LocalHooks, run_stage, step_dir_name
from lfdm.training.stage import Stage
from ray_jobs.common import TrainJob, init_ray, ray_storage

BuildStage = Callable[[LFDMConfig, TrainJob, torch.device, dict], Stage]


class RayTrainHooks(LocalHooks):
    def __init__(self, job: TrainJob):
        import ray.train
        import ray.train.torch
        ctx = ray.train.get_context()                                        # Ray 1/4: who am I
        super().__init__(ray.train.torch.get_device())
        self.rank, self.world_size, self.job = ctx.get_world_rank(), ctx.get_world_size(), job

    @contextlib.contextmanager
    def resume(self, run_uri: str) -> Iterator[Optional[str]]:
        import ray.train
        checkpoint = ray.train.get_checkpoint()                              # Ray 2/4: resume
        if checkpoint is None:
            yield None
            return
        if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
            yield checkpoint.path
            return
        # Not checkpoint.as_directory(): its download folder is shared by the workers of a node, and a worker that
        # finishes reading first deletes it while another still waits on its lock (Ray 2.60 raises "Checkpoint
        # directory ... does not exist"; seen on an S3 resume). Each worker reads its own copy instead.
        with tempfile.TemporaryDirectory(prefix="lfdm_resume_") as folder:
            yield checkpoint.to_directory(folder)

    def prepare(self, model: nn.Module) -> nn.Module:
        import ray.train.torch
        return ray.train.torch.prepare_model(model)                         # Ray 3/4: DDP

    def report(self, metrics: Dict[str, float], run_uri: str, step: int,
               write_checkpoint: Optional[Callable[[str], None]], keep: Optional[int]) -> None:
        import ray.train                                                     # Ray 4/4: metrics + checkpoint
        if write_checkpoint is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.rank == 0:
                write_checkpoint(tmp)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint,
                             checkpoint_dir_name=step_dir_name(step) if checkpoint else None)

    def after_step(self, step: int) -> None:
        job = self.job
        if job.fail_at_step is None or step != job.fail_at_step or self.rank != self.world_size - 1:
            return
        marker = storage.join(job.run_uri, f".fault_injected_step_{step}")
        if storage.exists(marker):
            return
        storage.write_text(marker, "a worker failed here on purpose (fail_at_step)\n")
        raise RuntimeError(f"injected failure at step {step} on rank {self.rank}")


def train_loop_per_worker(config: dict) -> None:
    job = from_dict(TrainJob, config["job"])
    cfg = from_dict(LFDMConfig, config["model"])
    hooks = RayTrainHooks(job)
    stage: Stage = config["build_stage"](cfg, job, hooks.device, config.get("extra", {}))
    run_stage(stage, hooks, job.run_uri, job.model_uri, provenance={"ray_job": job.name},
              log=lambda line: print(f"[{job.name}] {line}", flush=True))


class PlacementError(RuntimeError):
    """The training workers could not be placed: the resources they ask for are not in the cluster."""


def fit(job: TrainJob, build_stage: BuildStage, stage_name: str, extra: Optional[dict] = None):
    """Run ``build_stage``'s training on Ray Train; returns the Ray Result.

    Placement is bounded: when the workers' resources are missing (a node lost and not replaced), Ray Train waits
    ``placement_timeout_s`` per attempt and tries ``placement_retries`` more times, then this raises a
    PlacementError naming what is missing; the run stays resumable from its last checkpoint. There is no elastic
    restart on fewer workers: the global batch is the preset's whatever the worker count (each worker takes its
    share of a step-seeded global batch), so a rerun with fewer ``num_workers`` is defined and resumes, but it is a
    decision for the operator, not something done behind their back."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    # The driver's values of these reach Ray Train's controller and workers, on any cluster.
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(job.placement_timeout_s)
    os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"          # on, every worker line prints twice
    init_ray(job.address)
    cfg = job.model_config()
    path, fs = ray_storage(job.output)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": to_dict(job), "model": to_dict(cfg), "build_stage": build_stage,
                           "extra": extra or {}},
        scaling_config=ScalingConfig(num_workers=job.num_workers, use_gpu=job.use_gpu,
                                     resources_per_worker=dict(job.resources_per_worker)),
        run_config=RunConfig(name=job.name, storage_path=path, storage_filesystem=fs,
                             failure_config=FailureConfig(max_failures=job.max_failures,
                                                          controller_failure_limit=job.placement_retries),
                             checkpoint_config=CheckpointConfig(
                                 num_to_keep=getattr(cfg.train, stage_name).keep_checkpoints)),
    )
    try:
        result = trainer.fit()
    except Exception as exc:
        raise _placement_error(job, exc) or exc
    error = result.error
    if error is not None:
        raise _placement_error(job, error) or error
    return result


def _placement_error(job: TrainJob, error: BaseException) -> Optional[PlacementError]:
    import ray
    causes = {type(e).__name__ for e in (error, getattr(error, "controller_failure", None), error.__cause__) if e}
    if not causes & {"WorkerGroupStartupTimeoutError", "InsufficientClusterResourcesError"} \
            and "startup timed out" not in str(error):
        return None
    wanted = {k: v * job.num_workers for k, v in job.resources_per_worker.items()}
    if job.use_gpu:
        wanted["GPU"] = wanted.get("GPU", 0) or job.num_workers
    return PlacementError(
        f"{job.name}: could not place {job.num_workers} training workers (together {wanted}) within "
        f"{job.placement_timeout_s:g} s, {job.placement_retries + 1} attempt(s); the cluster has "
        f"{ {k: v for k, v in ray.available_resources().items() if k in wanted} } free now. Bring the nodes back "
        f"and rerun with the same name: it resumes from {job.run_uri}'s last checkpoint.")
