"""lfdm demo | serve: thin launchers for the Ray layers.

The library never imports ray_jobs or serve (they sit on top of it), so these commands replace the
current process with ``python -m ray_jobs.demo`` / ``python -m serve`` instead of importing them.
"""
from __future__ import annotations

import os
import sys
from typing import List


def register(sub) -> None:
    # Listed for --help only; lfdm.cli.main hands these to exec_module before argparse runs.
    sub.add_parser("demo", help="run the whole system end to end on local Ray (python -m ray_jobs.demo)")
    sub.add_parser("serve", help="serve the sampler over HTTP on 127.0.0.1 (python -m serve)")


def exec_module(module: str, args: List[str]) -> int:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])
    return 0  # not reached
