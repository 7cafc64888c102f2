"""Flow cache on Ray Data: ``python -m ray_jobs.precompute_flows --config ray_jobs/configs/demo_flows.yaml``.

One actor per GPU (use_gpu) or per CPU slot holds the frozen auto-encoder; each input row is a shard
index; an actor computes that shard's videos and writes the shard atomically. Shards already in the
cache are skipped, so a killed job resumes. Actors take fractional CPUs so the tasks feeding them are
never starved on small machines.
"""
from __future__ import annotations

import sys

import numpy as np

from lfdm import checkpoint as ckpt
from lfdm.device import pick_device
from lfdm.training.flow_cache import (compute_video_flows, missing_shards, prepare_cache, shard_uri,
                                      sweep_finished_shards, write_shard)
from ray_jobs.common import FlowsJob, available_slots, init_ray, job_argparser, load_job_config


class FlowShardWriter:
    """Ray Data callable class: loads the auto-encoder once, writes whole shards."""

    def __init__(self, lfae_uri: str, cache_uri: str, shards: list, image_size: int, use_gpu: bool):
        self.device = pick_device(use_gpu=use_gpu)
        self.model, _ = ckpt.load_lfae(lfae_uri, device=self.device)
        self.cache_uri, self.shards, self.image_size = cache_uri, shards, image_size

    def __call__(self, batch: dict) -> dict:
        from lfdm.data.manifest import VideoRecord
        done = []
        for index in batch["shard"].tolist():
            records = [VideoRecord(**{**r, "crop": tuple(r["crop"]) if r["crop"] else None}) for r in self.shards[index]]
            write_shard(shard_uri(self.cache_uri, index),
                        [compute_video_flows(self.model, r, self.image_size, device=self.device) for r in records])
            done.append(len(records))
        return {"shard": batch["shard"], "videos": np.array(done)}


def run(job: FlowsJob, log=print) -> str:
    import ray
    from dataclasses import asdict
    from ray.data import ActorPoolStrategy
    out = job.flows or f"{job.run_uri}/flows"
    records, shards, meta = prepare_cache(job.lfae, job.data, out, job.shard_size, None)
    todo = missing_shards(out, len(shards))
    log(f"flow cache {out}: {len(shards)} shards, {len(shards) - len(todo)} already written, {len(todo)} to do")
    if todo:
        init_ray(job.address)
        size = available_slots(job.use_gpu, len(todo), job.actors)
        plain = [[asdict(r) for r in shard] for shard in shards]
        ds = ray.data.from_items([{"shard": i} for i in todo], override_num_blocks=len(todo))
        ds = ds.map_batches(FlowShardWriter, batch_size=1, batch_format="numpy",
                            compute=ActorPoolStrategy(size=size),
                            num_gpus=1 if job.use_gpu else 0, num_cpus=0.5 if not job.use_gpu else 1,
                            fn_constructor_kwargs={"lfae_uri": job.lfae, "cache_uri": out, "shards": plain,
                                                   "image_size": meta["image_size"], "use_gpu": job.use_gpu})
        written = sum(int(row["videos"]) for row in ds.iter_rows())
        log(f"wrote {len(todo)} shards ({written} videos) with {size} actor(s)")
    sweep_finished_shards(out)
    return out


def main(argv=None) -> int:
    args = job_argparser("Precompute the stage-2 flow cache with Ray Data").parse_args(argv)
    job = load_job_config(FlowsJob, args.config, args.set).require("lfae", "data")
    print(f"flows: {run(job)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
