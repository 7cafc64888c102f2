"""Bounded-concurrency load generator against a running LFDM endpoint.

    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --image face.png --label "zoom in" \
        --concurrency 1 2 4 8 --requests 32 --steps 10 --out benchmarks/results/serve_load_cpu.json

For each concurrency level it sends a fixed number of requests with at most that many in flight and
reports p50/p95/p99 latency of successful requests, throughput and errors (any non-200, by status).
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
             params: Optional[Dict[str, str]] = None, token: Optional[str] = None, timeout: float = 600) -> List[dict]:
    with open(image_path, "rb") as f:
        image = f.read()
    return [asyncio.run(_level(url, image, label, c, requests_per_level, params or {}, token, timeout))
            for c in concurrencies]


def table(rows: List[dict]) -> str:
    lines = ["| concurrency | requests | ok | errors | p50 (s) | p95 (s) | p99 (s) | throughput (req/s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['p50_s']:.3f} | "
                     f"{r['p95_s']:.3f} | {r['p99_s']:.3f} | {r['throughput_rps']:.2f} |")
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
    p.add_argument("--out", help="JSON output")
    args = p.parse_args()
    rows = run_load(args.url, args.image, args.label, args.concurrency, args.requests,
                    {"sampler": args.sampler, "steps": args.steps, "format": args.format}, args.token)
    print(table(rows))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"url": args.url, "params": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
