"""The local training loop shared by both stages: steps, logging, checkpoints, samples, time limit."""
from __future__ import annotations

import json
import time
from typing import Callable, Iterable, Optional

import torch

from lfdm.config import StageTrainConfig
from lfdm.io import storage
from lfdm.io.seeding import derive_seed
from lfdm.training.steps import LossFn, TrainState, split_batch, train_step


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def run_loop(state: TrainState, batches: Iterable[dict], loss_fn: LossFn, stage: StageTrainConfig, *,
             device: torch.device, metrics_uri: str, save: Callable[[bool], None],
             sample: Optional[Callable[[dict], None]] = None, max_seconds: Optional[float] = None,
             rank: int = 0, log: Callable[[str], None] = print) -> dict:
    """Run steps until ``stage.steps`` or ``max_seconds``; returns the last metrics.

    ``save(final)`` writes a checkpoint; ``sample(batch)`` writes sample images.
    """
    start, last = time.time(), {}
    tick, tick_step = start, state.step
    lines = []
    for batch in batches:
        batch = to_device(batch, device)
        metrics = train_step(state, split_batch(batch, stage.grad_accum), loss_fn,
                             noise_seed=derive_seed(stage.seed, "noise", state.step, rank),
                             device=device, bf16=stage.bf16, grad_clip_norm=stage.grad_clip_norm)
        last = {"step": state.step, **metrics}
        done = state.step >= stage.steps
        if state.step % stage.log_every == 0 or done:
            now = time.time()
            last["samples_per_s"] = (state.step - tick_step) * stage.batch_size / max(now - tick, 1e-9)
            last["elapsed_s"] = now - start
            tick, tick_step = now, state.step
            lines.append(json.dumps(last))
            log(metrics_line(last))
        if stage.checkpoint_every and state.step % stage.checkpoint_every == 0 and not done:
            append_lines(metrics_uri, lines)
            save(False)
        if sample is not None and stage.sample_every and state.step % stage.sample_every == 0:
            sample(batch)
        if max_seconds is not None and time.time() - start > max_seconds and not done:
            log(f"time limit of {max_seconds:.0f}s reached at step {state.step}/{stage.steps}")
            break
    append_lines(metrics_uri, lines)
    return last


def metrics_line(metrics: dict) -> str:
    """One progress line: ``step=50 loss=3.508 lr=0.001 ...``."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def append_lines(uri: str, lines: list) -> None:
    """Append ``lines`` to the text file at ``uri`` (rewritten whole: S3 objects cannot be appended to) and
    empty the list."""
    if not lines:
        return
    previous = storage.read_text(uri) if storage.exists(uri) else ""
    storage.write_text(uri, previous + "".join(line + "\n" for line in lines))
    lines.clear()
