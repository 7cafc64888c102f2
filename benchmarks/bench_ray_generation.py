"""Ray Data generation throughput (videos/s) with 1 and 2 actors, on an embedded local Ray.

    python benchmarks/bench_ray_generation.py --checkpoint runs/demo/dm/model --data data/manifest.parquet \
        --videos 24 --actors 1 2 [--steps 10]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import RESULTS, environment, markdown  # noqa: E402


def main() -> None:
    import torch
    from ray_jobs import generate
    from ray_jobs.common import load_job_config, init_ray
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--sampler", default="dpmpp")
    p.add_argument("--use-gpu", action="store_true")
    args = p.parse_args()
    init_ray(None)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        def generate_with(name: str, actors: int, videos: int) -> float:
            job = load_job_config(None, [f"output={out}", f"name={name}", f"data={args.data}",
                                         f"generation.checkpoint={args.checkpoint}", f"generation.num_videos={videos}",
                                         f"generation.batch_size={args.batch_size}", f"generation.steps={args.steps}",
                                         f"generation.sampler={args.sampler}", f"actors={actors}",
                                         f"use_gpu={str(args.use_gpu).lower()}"], [])
            start = time.time()
            generate.run(job, log=lambda s: None)
            return time.time() - start
        # not timed: starts Ray's worker processes and fills the OS file cache, which would otherwise be
        # charged to whichever case runs first
        generate_with("warmup", max(args.actors), 2 * max(args.actors))
        for actors in args.actors:
            wall = generate_with(f"actors{actors}", actors, args.videos)
            rows.append({"case": "Ray Data generation", "actors": actors, "videos": args.videos,
                         "sampler": f"{args.sampler}-{args.steps}", "wall_s": wall, "videos_per_s": args.videos / wall})
            print(f"  {actors} actor(s): {args.videos / wall:.2f} videos/s", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "ray_generation.json"), "w") as f:
        json.dump({"benchmark": "ray_generation", "environment": environment(torch.device("cpu")),
                   "command": "python benchmarks/bench_ray_generation.py " + " ".join(sys.argv[1:]), "rows": rows}, f,
                  indent=2)
    print(markdown(rows))


if __name__ == "__main__":
    main()
