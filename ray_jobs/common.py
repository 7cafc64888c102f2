"""What every Ray job shares: its YAML run config, connecting to (or embedding) Ray, storage for Ray."""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml

from lfdm.config import ConfigError, LFDMConfig, from_dict, parse_override_args, with_overrides
from lfdm.io import storage
from lfdm.presets import get_preset


@dataclass(frozen=True)
class GenerationSettings:
    checkpoint: Optional[str] = None    # full model (kind lfdm)
    num_videos: int = 200
    split: str = "test"                 # where source frames come from ("train" for Table 2's gap)
    seed: int = 0
    sampler: Optional[str] = None       # default: the checkpoint's preset
    steps: Optional[int] = None
    guidance: Optional[float] = None
    eta: Optional[float] = None
    stochastic: bool = False            # null condition (paper Table 4)
    batch_size: int = 4
    formats: Tuple[str, ...] = ("npy",)  # npy (uint8 arrays, for evaluation) and/or mp4
    fps: float = 10.0


@dataclass(frozen=True)
class EvaluationSettings:
    generated: Optional[str] = None     # output folder of a generation job
    real_clips_per_video: int = 1
    weights: str = "reference"          # I3D weights: reference | i3d_torchscript.pt | TATS state dict
    bootstrap: int = 100                # rounds for the overall FVD interval
    group_bootstrap: int = 20           # rounds per class / subject
    batch_size: int = 4                 # clips per I3D forward
    feature_cache: Optional[str] = None  # where real-video features are cached (default OUTPUT/feature_cache)
    inception: Optional[str] = None     # TorchScript Inception for frame FID (Table 5); none: FID skipped


@dataclass(frozen=True)
class SweepSettings:
    checkpoints: Tuple[str, ...] = ()
    samplers: Tuple[str, ...] = ("ddim", "dpmpp")
    steps: Tuple[int, ...] = (10, 25)
    guidance: Tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class JobConfig:
    """Run settings of a Ray job (YAML in ray_jobs/configs; --set a.b=value overrides any field)."""
    preset: str = "demo64"
    overrides: Dict[str, Any] = field(default_factory=dict)   # preset overrides, e.g. {"train.lfae.steps": 500}
    name: str = "run"                   # the run's name: rerunning with the same name resumes it
    output: str = "runs"                # storage_path: local directory or s3://bucket/prefix
    data: Optional[str] = None          # manifest.parquet
    lfae: Optional[str] = None          # stage-1 checkpoint (flow precompute, stage 2)
    flows: Optional[str] = None         # flow cache (stage 2)
    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: Dict[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    checkpoint_every: Optional[int] = None   # default: the preset's train.<stage>.checkpoint_every
    keep_checkpoints: Optional[int] = 2      # Ray CheckpointConfig(num_to_keep); null keeps all
    max_failures: int = 0
    shard_size: int = 16                # flow precompute: videos per shard
    actors: Optional[int] = None        # Ray Data actor-pool size (default: one per GPU / CPU slot)
    address: Optional[str] = None       # Ray address; None: $RAY_ADDRESS, else an embedded local Ray
    fail_at_step: Optional[int] = None  # fault injection (tests): one worker raises once at this step
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)

    def model_config(self) -> LFDMConfig:
        return get_preset(self.preset, self.overrides)

    @property
    def run_uri(self) -> str:
        return storage.join(self.output, self.name)

    @property
    def model_uri(self) -> str:
        """Where the final model is exported, in the project's checkpoint format."""
        return storage.join(self.run_uri, "model")

    def require(self, *names: str) -> "JobConfig":
        missing = [n for n in names if _get(self, n) in (None, "")]
        if missing:
            raise ConfigError(f"this job needs {', '.join(missing)} in its config (or --set {missing[0]}=...)")
        return self


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def load_job_config(path: Optional[str], sets: List[str], overrides: List[str]) -> JobConfig:
    raw: Dict[str, Any] = {}
    if path:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    job = from_dict(JobConfig, raw)
    job = with_overrides(job, {k: yaml.safe_load(v) for k, v in parse_override_args(sets).items()})
    job = dataclasses.replace(job, overrides={**job.overrides, **parse_override_args(overrides)})
    job.model_config()          # unknown preset or override keys fail here, before Ray starts
    return job


def available_slots(use_gpu: bool, todo: int, requested: Optional[int]) -> int:
    """Actor-pool size: as requested, else one per GPU, else one per CPU slot but one (feeding tasks)."""
    import ray
    if requested:
        return max(1, min(requested, todo))
    resources = ray.cluster_resources()
    slots = resources.get("GPU", 0) if use_gpu else max(1.0, resources.get("CPU", 1) - 1)
    return max(1, min(int(slots), todo))


def job_argparser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", help="YAML run config (see ray_jobs/configs)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="job settings, e.g. num_workers=2")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                   help="model/training preset overrides, e.g. train.lfae.steps=500")
    return p


def init_ray(address: Optional[str] = None) -> None:
    """Connect to the cluster at ``address`` / $RAY_ADDRESS, or start an embedded local Ray.

    The embedded default oversubscribes logical CPUs (at least 4): on a 2-core machine an actor pool
    or Train workers that take every CPU starve the tasks feeding them and deadlock silently.
    """
    import ray
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    runtime_env = {"worker_process_setup_hook": quiet_ray_internals}
    if address and address != "local":
        ray.init(address=address, runtime_env=runtime_env)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")   # on, every worker print() shows twice
    os.environ.setdefault("RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S", "600")
    ray.init(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False,
             object_store_memory=512 * 2**20, log_to_driver=True, runtime_env=runtime_env)


def quiet_ray_internals() -> None:
    """Worker setup hook: drop two Ray Train V2 messages that drown the job's own progress lines.

    "Reporting training result ..." (INFO, every ``ray.train.report``) repeats our metrics line, and
    "Failed to query Ray Train Controller actor state" (WARNING, every few seconds) only means the
    State API is absent because the embedded instance runs without the dashboard. The hook runs in every
    worker process, Ray Data and Serve ones too, so it names the two loggers instead of importing Ray
    Train (0.7 s of CPU per process): Ray 2.60 names one by its file path, the other by its module.
    """
    import logging
    import ray
    execution = os.path.join(os.path.dirname(ray.__file__), "train", "v2", "_internal", "execution")
    logging.getLogger(os.path.join(execution, "context.py")).setLevel(logging.WARNING)
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def ray_storage(uri: str):
    """(storage_path, storage_filesystem) for Ray Train: S3 with an explicit filesystem (endpoint aware)."""
    if storage.is_s3(uri):
        fs, path = storage.filesystem(uri)
        return path, fs
    return os.path.abspath(uri), None
