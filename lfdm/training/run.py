"""The one training loop, for both stages, on one machine or on Ray Train.

``run_stage(stage, hooks, run_uri, export_uri)`` resumes from the newest step checkpoint, runs
``train_step`` until ``train.<stage>.steps``, logs, writes step checkpoints and sample images, and exports
the final model. What differs between a local run and a Ray Train worker is four touch points, the
hooks: which worker this is, where a resumable checkpoint comes from, how the model is wrapped (DDP),
and how a step checkpoint is stored. ``LocalHooks`` keep step checkpoints in RUN/step_NNNNNNN folders;
Ray's hooks (ray_jobs/train_common.py) hand them to Ray Train under the same names.

Run layout: RUN/step_NNNNNNN/ (config.json + model.safetensors + trainer_state.pt; the newest
``train.<stage>.keep_checkpoints`` kept), RUN/metrics.jsonl (one JSON line per logged step, written with each
checkpoint; lines past the resumed step are dropped on resume, so a resumed run's log equals an
uninterrupted one's), RUN/samples/step_NNNNNNN.png; the final model at EXPORT.
"""
from __future__ import annotations

import contextlib
import json
import time
from typing import Callable, ContextManager, Dict, Iterator, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from lfdm import checkpoint as ckpt
from lfdm.io import storage
from lfdm.io.seeding import derive_seed
from lfdm.training.batching import step_batches
from lfdm.training.collapse_guard import STOPPED, stopped_reason, write_stopped
from lfdm.training.stage import Stage
from lfdm.training.steps import split_batch, train_step

STEP_PREFIX = "step_"
TITLES = {"lfae": "stage 1", "dm": "stage 2"}
METRICS = "metrics.jsonl"


def step_dir_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:07d}"


def step_checkpoints(run_uri: str) -> List[str]:
    """Complete step checkpoints of a run, oldest first (folders missing config.json, the weights or the trainer
    state are ignored)."""
    dirs = [u for u in storage.listdir(run_uri) if storage.basename(u).startswith(STEP_PREFIX)]
    complete = (u for u in dirs if ckpt.exists(u, with_trainer_state=True))
    return sorted(complete, key=lambda u: int(storage.basename(u)[len(STEP_PREFIX):]))


class LocalHooks:
    """The touch points of a training run, for a single process; Ray Train workers subclass it."""
    rank, world_size = 0, 1

    def __init__(self, device: torch.device):
        self.device = device

    def resume(self, run_uri: str) -> ContextManager[Optional[str]]:
        """A local folder holding the checkpoint to resume from, or None."""
        existing = step_checkpoints(run_uri)
        return contextlib.nullcontext(existing[-1] if existing else None)

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def report(self, metrics: Dict[str, float], run_uri: str, step: int,
               write_checkpoint: Optional[Callable[[str], None]], keep: Optional[int]) -> None:
        """Called on every logged step; ``write_checkpoint(folder)`` is given when a step checkpoint is due."""
        if write_checkpoint is None:
            return
        write_checkpoint(storage.join(run_uri, step_dir_name(step)))
        if keep is not None:
            for old in step_checkpoints(run_uri)[:-keep]:
                storage.remove(old)

    def after_step(self, step: int) -> None:
        """Called after every step (Ray's hooks inject faults for tests here); nothing by default."""


class MetricsLog:
    """metrics.jsonl of a run, written by rank 0 only: lines are buffered and appended with each checkpoint."""

    def __init__(self, uri: str, enabled: bool):
        self.uri, self.enabled, self.pending = uri, enabled, []

    def resume(self, step: int) -> None:
        """Drop lines past ``step`` (replayed after a resume) and any partial line a crash left."""
        if not (self.enabled and storage.exists(self.uri)):
            return
        kept, changed = [], False
        for line in storage.read_text(self.uri).splitlines():
            try:
                ok = json.loads(line)["step"] <= step
            except (ValueError, KeyError, TypeError):
                ok = False
            kept.append(line) if ok else None
            changed |= not ok
        if changed:
            storage.write_text(self.uri, "".join(line + "\n" for line in kept))

    def add(self, metrics: dict) -> None:
        if self.enabled:
            self.pending.append(json.dumps(metrics))

    def flush(self) -> None:
        if self.enabled and self.pending:
            storage.append_text(self.uri, "".join(line + "\n" for line in self.pending))
            self.pending.clear()


def metrics_line(metrics: dict) -> str:
    """One progress line: ``step=50 loss=3.508 lr=0.001 ...``."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def mean_over_workers(metrics: Dict[str, float], device: torch.device) -> Dict[str, float]:
    if not (dist.is_available() and dist.is_initialized()):
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, (values / dist.get_world_size()).tolist()))


def run_stage(stage: Stage, hooks: LocalHooks, run_uri: str, export_uri: str, *, max_seconds: Optional[float] = None,
              provenance: Optional[dict] = None, log: Callable[[str], None] = print) -> dict:
    """Train ``stage`` to ``train.<stage>.steps`` (or for ``max_seconds``), then export; returns the last metrics.
    When the stage's ``health`` check stops it (lfdm.training.collapse_guard) nothing is exported and the metrics
    carry "stopped": why; a stopped run is not resumed."""
    sc, state, lead = stage.train, stage.state, hooks.rank == 0
    say = log if lead else (lambda _: None)
    for notice in stage.notices:
        say(notice)
    stopped = stopped_reason(run_uri)
    if stopped is not None:
        say(f"{run_uri} was stopped by its guard and is not resumed (remove its {STOPPED} to train it on): {stopped}")
        return {"stopped": stopped}
    with hooks.resume(run_uri) as folder:                                 # touch point 1: resume
        if folder is not None:
            stage.restore(ckpt.read_checkpoint(folder))
            state.load_trainer_state(ckpt.read_trainer_state(folder))
            say(f"resuming {TITLES[stage.name]} from step {state.step} ({folder})")
    metrics_log = MetricsLog(storage.join(run_uri, METRICS), enabled=lead)
    metrics_log.resume(state.step)
    provenance = {**stage.provenance, **(provenance or {})}

    def write_checkpoint(folder: str) -> None:
        ckpt.save_checkpoint(folder, stage.config, stage.step_tensors(), kind=stage.kind, labels=list(stage.labels),
                             extra={**provenance, "step": state.step}, trainer_state=state.trainer_state())

    state.model = hooks.prepare(stage.objective)                          # touch point 2: DDP
    if sc.batch_size % (hooks.world_size * sc.grad_accum):
        raise ValueError(f"global batch {sc.batch_size} does not split over {hooks.world_size} workers "
                         f"x {sc.grad_accum} micro-batches")
    last: dict = {}
    logged: List[dict] = []
    for batch, metrics, save, out_of_time in _steps(stage, hooks, max_seconds):
        step = state.step
        if metrics is not None:                                           # every logged step, and every save
            last = metrics = {"step": step, **mean_over_workers(metrics, hooks.device)}
            metrics_log.add(metrics)
            say(metrics_line(metrics))
            if save:
                metrics_log.flush()
            hooks.report(metrics, run_uri, step, write_checkpoint if save else None,  # touch point 3: report
                         sc.keep_checkpoints)
            logged.append(metrics)
            # every worker holds the same averaged metrics, so all of them stop at the same step
            stopped = stage.health(logged) if stage.health is not None else None
            if stopped is not None:
                say(stopped)
                metrics_log.flush()
                if lead:
                    write_stopped(run_uri, step, stopped)
                return {**last, "stopped": stopped}
        if lead and stage.sample is not None and sc.sample_every and step % sc.sample_every == 0:
            stage.sample(batch, storage.join(run_uri, "samples", f"{step_dir_name(step)}.png"))
        if out_of_time:
            say(f"time limit of {max_seconds:.0f}s reached at step {step}/{sc.steps}")
            break
    metrics_log.flush()
    if lead:
        stage.export(export_uri, {**provenance, "step": state.step})
    return last


def _steps(stage: Stage, hooks: LocalHooks, max_seconds: Optional[float]) -> Iterator[tuple]:
    """Run the steps; yield (batch, metrics to log or None, save a checkpoint?, out of time?) after each."""
    sc, state = stage.train, stage.state
    batches = step_batches(stage.dataset, stage.num_videos, sc.batch_size, sc.seed, state.step, sc.steps,
                           rank=hooks.rank, world_size=hooks.world_size, num_workers=sc.loader_workers)
    start = tick = time.time()
    tick_step = state.step
    for batch in batches:
        batch = to_device(batch, hooks.device)
        if stage.before_step is not None:
            stage.before_step(state.step)
        metrics = train_step(state, split_batch(batch, sc.grad_accum), stage.loss_fn,
                             noise_seed=derive_seed(sc.seed, "noise", state.step, hooks.rank),
                             device=hooks.device, bf16=sc.bf16, grad_clip_norm=sc.grad_clip_norm)
        step = state.step
        hooks.after_step(step)
        out_of_time = max_seconds is not None and time.time() - start > max_seconds and step < sc.steps
        save = step >= sc.steps or out_of_time or (sc.checkpoint_every and step % sc.checkpoint_every == 0)
        logged = None
        if step % sc.log_every == 0 or save:
            now = time.time()
            logged = {**metrics, "samples_per_s": (step - tick_step) * sc.batch_size / max(now - tick, 1e-9),
                      "elapsed_s": now - start}
            tick, tick_step = now, step
        yield batch, logged, bool(save), out_of_time
