"""Ray Data generation throughput (videos/s) with 1 and 2 actors, as an operator runs it: a Ray head on
127.0.0.1 started here, and ``python -m ray_jobs.generate`` submitted against it (benchmarks never import
ray_jobs). Throughput is the job's own figure (its last progress line), after an untimed warm-up run.

    python benchmarks/bench_ray_generation.py --checkpoint runs/demo/dm/model --data data/manifest.parquet \
        --videos 24 --actors 1 2 [--steps 10]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import RESULTS, environment, markdown  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(temp_dir: str, cpus: int):
    """A Ray head on 127.0.0.1 in its own process group (``--block``: SIGTERM stops what it started, and only
    that; ``ray stop`` would stop every Ray instance on the host). Returns (process, address)."""
    port = free_port()
    head = subprocess.Popen([os.path.join(BIN, "ray"), "start", "--head", "--block", f"--port={port}",
                             "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--include-dashboard=false",
                             f"--temp-dir={temp_dir}", "--disable-usage-stats"], env=ray_env(temp_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while subprocess.run([os.path.join(BIN, "ray"), "status", f"--address={address}"], env=ray_env(temp_dir),
                         capture_output=True).returncode != 0:
        if time.time() > deadline or head.poll() is not None:
            raise RuntimeError("the Ray head did not come up")
        time.sleep(1)
    return head, address


def stop_head(head: subprocess.Popen) -> None:
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


def ray_env(temp_dir: str) -> dict:
    return {**os.environ, "RAY_TMPDIR": temp_dir, "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
            "RAY_USAGE_STATS_ENABLED": "0"}


def generate(address: str, temp_dir: str, out: str, name: str, actors: int, videos: int, args) -> float:
    """Runs the job; returns its reported videos/s."""
    sets = [f"output={out}", f"name={name}", f"data={args.data}", f"address={address}", f"actors={actors}",
            f"use_gpu={str(args.use_gpu).lower()}", f"generation.checkpoint={args.checkpoint}",
            f"generation.num_videos={videos}", f"generation.batch_size={args.batch_size}",
            f"generation.steps={args.steps}", f"generation.sampler={args.sampler}"]
    result = subprocess.run([sys.executable, "-m", "ray_jobs.generate", "--set", *sets], cwd=ROOT,
                            env=ray_env(temp_dir), capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    rates = re.findall(r"([\d.]+) videos/s", result.stdout)
    if not rates:
        raise RuntimeError(f"the job printed no throughput:\n{result.stdout[-2000:]}")
    return float(rates[-1])


def main() -> None:
    import torch
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
    rows = []
    temp_dir = tempfile.mkdtemp(prefix="lfdm-bench-", dir="/tmp")
    head, address = start_head(temp_dir, max(4, os.cpu_count() or 1))
    try:
        with tempfile.TemporaryDirectory() as out:
            # not timed: starts Ray's worker processes and fills the OS file cache
            generate(address, temp_dir, out, "warmup", max(args.actors), 2 * max(args.actors), args)
            for actors in args.actors:
                rate = generate(address, temp_dir, out, f"actors{actors}", actors, args.videos, args)
                rows.append({"case": "Ray Data generation", "actors": actors, "videos": args.videos,
                             "sampler": f"{args.sampler}-{args.steps}", "videos_per_s": rate})
                print(f"  {actors} actor(s): {rate:.2f} videos/s", flush=True)
    finally:
        stop_head(head)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "ray_generation.json"), "w") as f:
        json.dump({"benchmark": "ray_generation", "environment": environment(torch.device("cpu")),
                   "command": "python benchmarks/bench_ray_generation.py " + " ".join(sys.argv[1:]), "rows": rows}, f,
                  indent=2)
    print(markdown(rows))


if __name__ == "__main__":
    main()
