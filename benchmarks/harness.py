"""Benchmark harness: warm-up, device synchronisation, median of repeats, peak memory, JSON + Markdown.

Each scenario script builds ``Case``s and calls ``run_cases``; results go to benchmarks/results/NAME.json
and a Markdown table is printed. Compare speeds as ratios measured in one run: shared machines are noisy.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclass
class Case:
    name: str
    fn: Callable[[], object]
    items: int = 1                    # videos / clips / samples produced by one call
    unit: str = "video"
    params: Dict[str, object] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(case: Case, device: torch.device, warmup: int = 1, repeats: int = 3) -> Dict[str, object]:
    for _ in range(warmup):
        case.fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        case.fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    row = {"case": case.name, **case.params, "items": case.items, "unit": case.unit, "median_s": median,
           "min_s": min(times), "repeats": repeats, f"s_per_{case.unit}": median / case.items,
           f"{case.unit}s_per_s": case.items / median}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
        row["peak_gb"] = peak / 2**30
        row[f"gb_per_{case.unit}"] = peak / 2**30 / case.items
    return row


def environment(device: torch.device) -> Dict[str, object]:
    env = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
           "device": str(device), "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def run_cases(name: str, cases: List[Case], device: torch.device, warmup: int = 1, repeats: int = 3,
              command: Optional[str] = None, notes: Optional[Dict[str, object]] = None) -> List[Dict[str, object]]:
    rows = []
    for case in cases:
        row = measure(case, device, warmup, repeats)
        rows.append(row)
        print(f"  {case.name}: {row['median_s']:.4f} s", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    payload = {"benchmark": name, "environment": environment(device), "command": command, "rows": rows,
               "notes": notes or {}}
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(payload, f, indent=2)
    print(markdown(rows))
    return rows


def markdown(rows: List[Dict[str, object]]) -> str:
    keys = [k for k in rows[0] if k not in ("items", "repeats", "min_s")]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def device_arg(value: Optional[str]) -> torch.device:
    from lfdm.device import pick_device
    return pick_device(value)
