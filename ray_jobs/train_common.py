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
import tempfile
from typing import Callable, Dict, Iterator, Optional

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
        with checkpoint.as_directory() as folder:
            yield folder

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


def fit(job: TrainJob, build_stage: BuildStage, stage_name: str, extra: Optional[dict] = None):
    """Run ``build_stage``'s training on Ray Train; returns the Ray Result."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
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
                             failure_config=FailureConfig(max_failures=job.max_failures),
                             checkpoint_config=CheckpointConfig(
                                 num_to_keep=getattr(cfg.train, stage_name).keep_checkpoints)),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return result
