"""Bounded-concurrency load generator against a running LFDM endpoint, with the replica count over time.

    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --image face.png --label "zoom in" \
        --concurrency 1 2 4 8 --requests 32 --steps 10 --out benchmarks/results/serve_load_cpu.json \
        [--ray-address 127.0.0.1:6379 --app lfdm --plot benchmarks/results/serve_replicas.png]

For each concurrency level it sends a fixed number of requests with at most that many in flight and
reports p50/p95/p99 latency of successful requests, throughput and errors (any non-200, by status). With
--ray-address, benchmarks/replica_watch.py records the generator's replica count from Serve's controller
throughout; each level gets its min/max/mean replicas, the JSON the whole timeline, --plot a figure of replicas
against offered load.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import time
from typing import Dict, List, Optional

import httpx
import numpy as np


async def _level(url: str, image: bytes, label: Optional[str], concurrency: int, total: int, params: Dict[str, str],
                 token: Optional[str], timeout: float) -> Dict[str, object]:
    limit = asyncio.Semaphore(concurrency)
    latencies: List[float] = []
    errors: Dict[int, int] = collections.Counter()
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with limit:
            data = {**params, "seed": str(i)}
            if label is not None:
                data["label"] = label
            start = time.perf_counter()
            try:
                r = await client.post("/v1/generate", files={"image": ("image.png", image)}, data=data, headers=headers)
                status = r.status_code
            except httpx.HTTPError:
                status = -1
            if status == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors[status] += 1

    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(total)))
        wall = time.perf_counter() - start
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {"concurrency": concurrency, "requests": total, "ok": len(latencies), "errors": sum(errors.values()),
            "errors_by_status": dict(errors), "p50_s": float(np.percentile(lat, 50)),
            "p95_s": float(np.percentile(lat, 95)), "p99_s": float(np.percentile(lat, 99)),
            "throughput_rps": len(latencies) / wall, "wall_s": wall}


def run_load(url: str, image_path: str, label: Optional[str], concurrencies: List[int], requests_per_level: int,
             params: Optional[Dict[str, str]] = None, token: Optional[str] = None, timeout: float = 600,
             watcher: Optional["ReplicaWatcher"] = None) -> List[dict]:
    with open(image_path, "rb") as f:
        image = f.read()
    rows = []
    for c in concurrencies:
        start = watcher.now() if watcher else 0.0
        row = asyncio.run(_level(url, image, label, c, requests_per_level, params or {}, token, timeout))
        if watcher:
            counts = [p["running"] for p in watcher.between(start, watcher.now())] or [0]
            row.update(start_s=start, end_s=watcher.now(), replicas_min=min(counts), replicas_max=max(counts),
                       replicas_mean=float(np.mean(counts)))
        rows.append(row)
    return rows


class ReplicaWatcher:
    """benchmarks/replica_watch.py in a subprocess, its JSON lines collected in a thread."""

    def __init__(self, address: str, app: str = "lfdm", deployment: str = "generator", interval: float = 0.5,
                 env: Optional[dict] = None):
        import subprocess
        import sys
        import threading
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replica_watch.py")
        self.proc = subprocess.Popen([sys.executable, script, "--address", address, "--app", app, "--deployment",
                                      deployment, "--interval", str(interval)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        self.points: List[dict] = []
        self.started = time.time()
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        for line in self.proc.stdout:
            try:
                point = json.loads(line)
            except ValueError:
                continue
            point["t"] = time.time() - self.started            # one clock for loads and replicas
            self.points.append(point)

    def now(self) -> float:
        return time.time() - self.started

    def between(self, start: float, end: float) -> List[dict]:
        return [p for p in self.points if start <= p["t"] <= end]

    def wait_for(self, predicate, timeout: float) -> Optional[float]:
        """Seconds until a point satisfies ``predicate``, or None after ``timeout``."""
        begin = self.now()
        while self.now() - begin < timeout:
            if self.points and predicate(self.points[-1]):
                return self.now() - begin
            time.sleep(0.2)
        return None

    def stop(self) -> List[dict]:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except Exception:
            self.proc.kill()
        self.thread.join(5)
        return self.points


def plot_replicas(rows: List[dict], points: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.step([p["t"] for p in points], [p["running"] for p in points], where="post", label="generator replicas")
    ax.set_xlabel("seconds")
    ax.set_ylabel("replicas (RUNNING)")
    load = ax.twinx()
    for r in rows:
        load.hlines(r["concurrency"], r["start_s"], r["end_s"], colors="tab:orange")
    load.set_ylabel("offered load (concurrent requests)", color="tab:orange")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(rows: List[dict]) -> str:
    replicas = "replicas_max" in (rows[0] if rows else {})
    lines = ["| concurrency | requests | ok | errors | p50 (s) | p95 (s) | p99 (s) | throughput (req/s) |"
             + (" replicas min / mean / max |" if replicas else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if replicas else "")]
    for r in rows:
        line = (f"| {r['concurrency']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['p50_s']:.3f} | "
                f"{r['p95_s']:.3f} | {r['p99_s']:.3f} | {r['throughput_rps']:.2f} |")
        if replicas:
            line += f" {r['replicas_min']} / {r['replicas_mean']:.1f} / {r['replicas_max']} |"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--image", required=True)
    p.add_argument("--label")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--requests", type=int, default=32, help="requests per concurrency level (bounded)")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--steps", default="10")
    p.add_argument("--format", default="mp4")
    p.add_argument("--token", default=os.environ.get("LFDM_SERVE_TOKEN"))
    p.add_argument("--ray-address", help="record the generator's replicas from this cluster's Serve controller")
    p.add_argument("--app", default="lfdm")
    p.add_argument("--settle", type=float, default=0, help="seconds to keep recording after the last level")
    p.add_argument("--plot", help="PNG of replicas against offered load (needs --ray-address)")
    p.add_argument("--out", help="JSON output")
    args = p.parse_args()
    watcher = ReplicaWatcher(args.ray_address, args.app) if args.ray_address else None
    if watcher:
        watcher.wait_for(lambda point: point["running"] > 0, 120)
    rows = run_load(args.url, args.image, args.label, args.concurrency, args.requests,
                    {"sampler": args.sampler, "steps": args.steps, "format": args.format}, args.token,
                    watcher=watcher)
    points = []
    if watcher:
        time.sleep(args.settle)
        points = watcher.stop()
        if args.plot:
            plot_replicas(rows, points, args.plot)
    print(table(rows))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"url": args.url, "params": {k: v for k, v in vars(args).items() if k != "token"},
                       "rows": rows, "replicas": points}, f, indent=2)


if __name__ == "__main__":
    main()
