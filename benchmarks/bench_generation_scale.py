"""The 10,000-video protocol, simulated at `tiny` size through the real generation job on a local Ray cluster:
videos/s per actor, driver memory, object-store use and metadata size, so the cost of the same plan at `mug128` on
a GPU cluster can be computed on paper. Runs for --minutes at most; the rate is extrapolated to the whole plan.

    python benchmarks/bench_generation_scale.py --checkpoint CKPT --data manifest.parquet --videos 10000 \
        --minutes 8 --actors 2 --batch-size 8 --steps 2
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ray_generation import ROOT, ray_env, start_head, stop_head  # noqa: E402
from harness import RESULTS, environment  # noqa: E402


def folder_bytes(path: str) -> tuple:
    names = os.listdir(path) if os.path.isdir(path) else []
    return len(names), sum(os.path.getsize(os.path.join(path, n)) for n in names)


def plasma_mib(address: str) -> float:
    from ray._private.internal_api import memory_summary
    match = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(address=address, stats_only=True))
    return float(match.group(1)) if match else float("nan")


def main() -> None:
    import psutil
    import ray
    import torch
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--videos", type=int, default=10000)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=2)
    args = p.parse_args()
    temp_dir = tempfile.mkdtemp(prefix="lfdm-scale-", dir="/tmp")
    head, address = start_head(temp_dir, max(4, os.cpu_count() or 1))
    out = tempfile.mkdtemp(prefix="lfdm-scale-out-")
    run = os.path.join(out, "scale")
    samples = []
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        sets = [f"output={out}", "name=scale", f"data={args.data}", f"address={address}", f"actors={args.actors}",
                f"generation.checkpoint={args.checkpoint}", f"generation.num_videos={args.videos}",
                f"generation.batch_size={args.batch_size}", f"generation.steps={args.steps}",
                "generation.sampler=ddim"]
        start = time.time()
        job = subprocess.Popen([sys.executable, "-m", "ray_jobs.generate", "--set", *sets], cwd=ROOT,
                               env=ray_env(temp_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        driver = psutil.Process(job.pid)
        first = None
        while job.poll() is None and time.time() - start < 60 * args.minutes:
            done, _ = folder_bytes(os.path.join(run, "meta"))
            if done and first is None:
                first = (time.time() - start, done)
            try:
                rss = driver.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                break
            samples.append({"t": time.time() - start, "videos": done, "driver_rss_mib": rss,
                            "plasma_mib": plasma_mib(address)})
            time.sleep(5)
        finished = job.poll() is not None
        if not finished:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(60)
        elapsed = time.time() - start
        done, meta_bytes = folder_bytes(os.path.join(run, "meta"))
        plan_bytes = os.path.getsize(os.path.join(run, "plan.parquet"))
        steady = (done - first[1]) / max(elapsed - first[0], 1e-9) if first else 0.0
        row = {"videos_planned": args.videos, "videos_done": done, "finished": finished, "wall_s": elapsed,
               "startup_s": first[0] if first else None, "videos_per_s": steady,
               "videos_per_s_per_actor": steady / args.actors, "actors": args.actors, "batch_size": args.batch_size,
               "sampler": f"ddim-{args.steps}", "driver_rss_peak_mib": max(s["driver_rss_mib"] for s in samples),
               "plasma_peak_mib": max(s["plasma_mib"] for s in samples), "plan_parquet_bytes": plan_bytes,
               "meta_bytes_per_video": meta_bytes / max(done, 1),
               "extrapolated_wall_s_for_plan": (first[0] if first else 0) + args.videos / max(steady, 1e-9)}
    finally:
        ray.shutdown()
        stop_head(head)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "generation_scale_cpu.json"), "w") as f:
        json.dump({"benchmark": "generation_scale", "environment": environment(torch.device("cpu")),
                   "command": "python benchmarks/bench_generation_scale.py " + " ".join(sys.argv[1:]),
                   "row": row, "samples": samples}, f, indent=2)
    for k, v in row.items():
        print(f"{k:32s} {v:.4g}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
