"""Stop a stage 1 whose flow stays still (``train.lfae_guard``), instead of training it to the end.

A stage 1 can settle on a zero flow, its motion mask on the still background and its decoder painting the driving
frame from the occlusion map; stage 2 then learns still videos. Such a run is visible long before its end: its
logged mean displacement (flow_px, image pixels) stays near zero while healthy runs have taken off. The guard
averages flow_px over the logged steps of a window of training and, once, at the window's end, stops the run when
that mean is below a floor. The run keeps its step checkpoints, writes RUN/stopped.json and exports no model.
"""
from __future__ import annotations

import json
from typing import Callable, List, Optional

from lfdm.config import CollapseGuardConfig
from lfdm.io import storage

STOPPED = "stopped.json"
Check = Callable[[List[dict]], Optional[str]]          # logged metrics so far -> why to stop, or None


class TrainingStopped(RuntimeError):
    """A training run stopped by its guard; the message says why."""


def collapse_check(guard: CollapseGuardConfig, steps: int) -> Optional[Check]:
    """The guard's check over a run's logged metrics (dicts with "step" and "flow_px"), or None when it is off."""
    if not guard.min_flow_px:
        return None
    start, end = (int(round(f * steps)) for f in guard.window)

    def check(logged: List[dict]) -> Optional[str]:
        # once: at the first logged step at or after the window's end (the one before it is still inside)
        if not logged or logged[-1]["step"] < end or (len(logged) > 1 and logged[-2]["step"] >= end):
            return None
        values = [m["flow_px"] for m in logged if start <= m["step"] <= end and "flow_px" in m]
        if not values:                                 # resumed past the window: nothing of it was seen here
            return None
        mean = sum(values) / len(values)
        if mean >= guard.min_flow_px:
            return None
        return (f"stage 1 stopped at step {logged[-1]['step']} of {steps}: its flow moved {mean:.4f} px on average "
                f"over steps {start}-{end} ({len(values)} logged), below train.lfae_guard.min_flow_px="
                f"{guard.min_flow_px:g}: the motion collapsed onto the still background, and stage 2 would learn "
                "still videos")
    return check


def write_stopped(run_uri: str, step: int, reason: str) -> None:
    storage.write_text(storage.join(run_uri, STOPPED), json.dumps({"step": step, "reason": reason}, indent=2))


def stopped_reason(run_uri: str) -> Optional[str]:
    """Why the run at ``run_uri`` was stopped by its guard, or None if it was not."""
    uri = storage.join(run_uri, STOPPED)
    return json.loads(storage.read_text(uri))["reason"] if storage.exists(uri) else None
