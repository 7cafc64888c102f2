"""Ray Train V2 wiring shared by both training stages: a handful of marked Ray calls around
lfdm.training's step function.

Data: every worker reads its share of the same global batch from a step-seeded sampler
(lfdm.training.batching) rather than Ray Data streaming: batches are a pure function of the step,
so a resumed run replays exactly the batches an uninterrupted one would see, and the global batch
is the preset's whatever the number of workers. Per-worker batch = global / workers; gradient
accumulation splits it further into ``train.<stage>.grad_accum`` micro-batches.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from lfdm.config import LFDMConfig, StageTrainConfig, from_dict, to_dict
from lfdm.io import storage
from lfdm.io.seeding import derive_seed
from lfdm.training import checkpoint as ckpt
from lfdm.training.batching import step_batches
from lfdm.training.loop import append_lines, metrics_line, to_device
from lfdm.training.steps import LossFn, TrainState, split_batch, train_step
from ray_jobs.common import JobConfig, init_ray, ray_storage


@dataclass
class Stage:
    """What a training stage hands to the shared Ray loop."""
    stage_cfg: StageTrainConfig
    objective: nn.Module
    state: TrainState
    dataset: Dataset
    num_videos: int
    loss_fn: LossFn
    kind: str
    step_tensors: Callable[[], Dict[str, torch.Tensor]]          # weights of a resumable checkpoint
    restore: Callable[[ckpt.Checkpoint], None]                     # load them back
    export: Callable[[str], None]                                  # write the final model
    labels: tuple = ()


def _mean_over_workers(metrics: Dict[str, float], device: torch.device) -> Dict[str, float]:
    if not (dist.is_available() and dist.is_initialized()):
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, (values / dist.get_world_size()).tolist()))


def _maybe_inject_fault(job: JobConfig, step: int, rank: int, world: int) -> None:
    if job.fail_at_step is None or step != job.fail_at_step or rank != world - 1:
        return
    marker = storage.join(job.run_uri, f".fault_injected_step_{step}")
    if storage.exists(marker):
        return
    storage.write_text(marker, "a worker failed here on purpose (fail_at_step)\n")
    raise RuntimeError(f"injected failure at step {step} on rank {rank}")


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch
    job = from_dict(JobConfig, config["job"])
    cfg = from_dict(LFDMConfig, config["model"])
    ctx = ray.train.get_context()                                        # Ray 1/4: who am I
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    stage: Stage = config["build_stage"](cfg, job, device, config.get("extra", {}))
    sc = stage.stage_cfg
    every = job.checkpoint_every or sc.checkpoint_every
    resume = ray.train.get_checkpoint()                                  # Ray 2/4: resume
    if resume is not None:
        with resume.as_directory() as d:
            loaded = ckpt.read_checkpoint(d)
            stage.restore(loaded)
            stage.state.load_trainer_state(ckpt.read_trainer_state(d))
        if rank == 0:
            print(f"resumed from checkpoint at step {stage.state.step}", flush=True)
    stage.state.model = ray.train.torch.prepare_model(stage.objective)   # Ray 3/4: DDP
    if sc.batch_size % (world * sc.grad_accum):
        raise ValueError(f"global batch {sc.batch_size} does not split over {world} workers x {sc.grad_accum}")
    batches = step_batches(stage.dataset, stage.num_videos, sc.batch_size, sc.seed, stage.state.step, sc.steps,
                           rank=rank, world_size=world, num_workers=sc.loader_workers)
    tick, tick_step = time.time(), stage.state.step
    for batch in batches:
        batch = to_device(batch, device)
        metrics = train_step(stage.state, split_batch(batch, sc.grad_accum), stage.loss_fn,
                             noise_seed=derive_seed(sc.seed, "noise", stage.state.step, rank),
                             device=device, bf16=sc.bf16, grad_clip_norm=sc.grad_clip_norm)
        step = stage.state.step
        _maybe_inject_fault(job, step, rank, world)
        save = step % every == 0 or step == sc.steps
        if step % sc.log_every == 0 or save:
            now = time.time()
            metrics["samples_per_s_per_worker"] = (step - tick_step) * sc.batch_size / world / max(now - tick, 1e-9)
            tick, tick_step = now, step
            metrics = {**_mean_over_workers(metrics, device), "step": step}
            _report(metrics, stage, cfg, job, rank, save)                # Ray 4/4: metrics + checkpoint
    if rank == 0:
        stage.export(job.model_uri)


def _report(metrics: dict, stage: Stage, cfg: LFDMConfig, job: JobConfig, rank: int, save: bool) -> None:
    import ray.train
    if rank == 0:
        # every reported line, for loss curves (Ray's Result holds only the latest)
        append_lines(storage.join(job.run_uri, "metrics.jsonl"), [json.dumps(metrics)])
        print(f"[{job.name}] {metrics_line({'step': metrics['step'], **metrics})}", flush=True)
    if not save:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            ckpt.save_checkpoint(tmp, cfg, stage.step_tensors(), kind=stage.kind, labels=list(stage.labels),
                                 extra={"step": stage.state.step, "job": job.name},
                                 trainer_state=stage.state.trainer_state())
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint,
                         checkpoint_dir_name=f"checkpoint_step_{stage.state.step:07d}" if checkpoint else None)


def fit(job: JobConfig, build_stage, extra: Optional[dict] = None):
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
                             checkpoint_config=CheckpointConfig(num_to_keep=job.keep_checkpoints)),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return result
