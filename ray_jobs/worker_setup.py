"""Setup hooks that run in every worker process of a job's Ray instance, before any task.

This module imports nothing of lfdm and no torch: a hook is imported in the worker before Ray sets the worker's
thread count (OMP_NUM_THREADS = its CPUs), and torch imported that early keeps one thread per core instead, which
oversubscribes a small machine (measured: 2 Train workers on 2 cores, 0.39 s per stage-1 step with one thread
each, 5-8 s with two).
"""
from __future__ import annotations

import os


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
