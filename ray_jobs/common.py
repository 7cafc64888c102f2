"""What every Ray job shares: its YAML run config, connecting to (or embedding) Ray, storage for Ray."""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

import yaml

from lfdm.embedded_ray import prepare_embedded_ray
from lfdm.config import ConfigError, LFDMConfig, from_dict, parse_override_args, with_overrides
from lfdm.io import storage
from lfdm.presets import get_preset
from lfdm.runs.evaluation import EvaluationSettings
from lfdm.runs.generation import GenerationSettings
from ray_jobs.worker_setup import quiet_ray_internals


@dataclass(frozen=True)
class Job:
    """What every Ray job's YAML run config has (ray_jobs/configs; ``--set a.b=value`` overrides any field)."""
    name: str = "run"                   # the run's name: rerunning with the same name resumes it
    output: str = "runs"                # local directory or s3://bucket/prefix; the run lives in OUTPUT/NAME
    address: Optional[str] = None       # Ray address; None: $RAY_ADDRESS, else an embedded local Ray
    use_gpu: bool = False

    @property
    def run_uri(self) -> str:
        return storage.join(self.output, self.name)

    def require(self, *names: str):
        missing = [n for n in names if _get(self, n) in (None, "")]
        if missing:
            raise ConfigError(f"this job needs {', '.join(missing)} in its config (or --set {missing[0]}=...)")
        return self


@dataclass(frozen=True)
class TrainJob(Job):
    """Stage 1 (needs data) or stage 2 (needs lfae and flows) on Ray Train. Step checkpoints: every
    train.<stage>.checkpoint_every steps, the newest train.<stage>.keep_checkpoints kept (preset overrides)."""
    preset: str = "demo64"
    overrides: Dict[str, Any] = field(default_factory=dict)   # preset overrides, e.g. {"train.lfae.steps": 500}
    data: Optional[str] = None          # manifest.parquet (stage 1)
    init: Optional[str] = None          # stage 1: start from this auto-encoder's weights
    lfae: Optional[str] = None          # stage 2: the frozen stage-1 checkpoint
    flows: Optional[str] = None         # stage 2: its flow cache
    num_workers: int = 1
    resources_per_worker: Dict[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    max_failures: int = 0               # restarts from the last checkpoint after a worker fails
    placement_timeout_s: float = 600.0  # how long to wait for the workers' resources (a lost node), per attempt
    placement_retries: int = 1          # attempts after the first; then the job fails naming what is missing
    fail_at_step: Optional[int] = None  # fault injection (tests): one worker raises once at this step

    def model_config(self) -> LFDMConfig:
        return get_preset(self.preset, self.overrides)

    @property
    def model_uri(self) -> str:
        """Where the final model is exported, in the project's checkpoint format."""
        return storage.join(self.run_uri, "model")


@dataclass(frozen=True)
class DataJob(Job):
    actors: Optional[int] = None        # Ray Data actor-pool size (default: one per GPU / CPU slot)
    data: Optional[str] = None          # manifest.parquet


@dataclass(frozen=True)
class FlowsJob(DataJob):
    lfae: Optional[str] = None          # the frozen stage-1 checkpoint
    flows: Optional[str] = None         # cache directory (default OUTPUT/NAME/flows)
    shard_size: int = 16                # videos per shard


@dataclass(frozen=True)
class GenerateJob(DataJob):
    generation: GenerationSettings = field(default_factory=GenerationSettings)


@dataclass(frozen=True)
class EvaluateJob(DataJob):
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)


@dataclass(frozen=True)
class SweepSettings:
    checkpoints: Tuple[str, ...] = ()
    samplers: Tuple[str, ...] = ("ddim", "dpmpp")
    steps: Tuple[int, ...] = (10, 25)
    guidance: Tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class SweepJob(DataJob):
    generation: GenerationSettings = field(default_factory=GenerationSettings)   # checkpoint and sampler: per cell
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


J = TypeVar("J", bound=Job)


def load_job_config(cls: Type[J], path: Optional[str], sets: List[str], overrides: List[str] = ()) -> J:
    """The job's YAML (its own schema: another job's keys are errors) with ``--set`` values and, for training,
    ``--override`` preset overrides; values on the command line use one grammar (lfdm.config.parse_value)."""
    raw: Dict[str, Any] = {}
    if path:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    job = with_overrides(from_dict(cls, raw), parse_override_args(list(sets)))
    if overrides:
        if not issubclass(cls, TrainJob):
            raise ConfigError("--override sets model/training preset keys; this job takes its model from a checkpoint")
        job = dataclasses.replace(job, overrides={**job.overrides, **parse_override_args(list(overrides))})
    if isinstance(job, TrainJob):
        job.model_config()      # unknown preset or override keys fail here, before Ray starts
    return job


def available_slots(use_gpu: bool, todo: int, requested: Optional[int]) -> int:
    """Actor-pool size: as requested, else one per GPU, else one per CPU slot but one (feeding tasks)."""
    import ray
    if requested:
        return max(1, min(requested, todo))
    resources = ray.cluster_resources()
    slots = resources.get("GPU", 0) if use_gpu else max(1.0, resources.get("CPU", 1) - 1)
    return max(1, min(int(slots), todo))


def job_argparser(description: str, training: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", help="YAML run config (see ray_jobs/configs)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="job settings, e.g. name=run2")
    if training:
        p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                       help="model/training preset overrides, e.g. train.lfae.steps=500")
    return p


def init_ray(address: Optional[str] = None) -> None:
    """Connect to the cluster at ``address`` / $RAY_ADDRESS, or start an embedded local Ray that listens on
    127.0.0.1 only (lfdm.embedded_ray)."""
    import ray
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    runtime_env = {"worker_process_setup_hook": quiet_ray_internals}     # imports neither torch nor lfdm
    if address and address != "local":
        ray.init(address=address, runtime_env=runtime_env)
        return
    ray.init(runtime_env=runtime_env, **prepare_embedded_ray())


def ray_storage(uri: str):
    """(storage_path, storage_filesystem) for Ray Train: S3 with an explicit filesystem (endpoint aware)."""
    if storage.is_s3(uri):
        fs, path = storage.filesystem(uri)
        return path, fs
    return os.path.abspath(uri), None
