"""Large-scale generation on Ray Data: ``python -m ray_jobs.generate --config ray_jobs/configs/demo_generate.yaml``.

The run is lfdm.runs.generation's (its layout, plan and resume rules; ``lfdm generate run`` is the same run
in one process): the driver writes the plan, videos not yet done go to an actor pool (one per GPU or CPU
slot) whose actors hold the pipeline once and write ``generation.batch_size`` videos per call, and the
driver gathers the metadata into OUTPUT/NAME/generated.parquet.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from lfdm.device import pick_device
from lfdm.runs import generation
from ray_jobs.common import GenerateJob, available_slots, init_ray, job_argparser, load_job_config


class RayVideoGenerator:
    """Ray Data callable class around lfdm's VideoGenerator (loaded once per actor)."""

    def __init__(self, checkpoint: str, manifest: str, out: str, formats, fps: float, use_gpu: bool):
        self.generate = generation.VideoGenerator(checkpoint, manifest, out, formats, fps, pick_device(use_gpu=use_gpu))

    def __call__(self, batch: dict) -> dict:
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in zip(batch, values)}
                for values in zip(*batch.values())]
        seconds = self.generate(rows)
        return {"video_id": batch["video_id"], "seconds": np.full(len(rows), seconds)}


def run(job: GenerateJob, log=print) -> str:
    import ray
    from ray.data import ActorPoolStrategy
    g, out = job.generation, job.run_uri
    plan = generation.prepare(out, job.data, g)
    todo = generation.to_do(out, plan)
    first = plan[0]
    log(f"generation {out}: {len(plan)} videos planned, {len(plan) - len(todo)} done, {len(todo)} to do "
        f"({first['sampler']}, {first['steps']} steps, guidance {first['guidance']})")
    if todo:
        init_ray(job.address)
        size = available_slots(job.use_gpu, -(-len(todo) // g.batch_size), job.actors)
        ds = ray.data.from_items(todo, override_num_blocks=max(1, min(len(todo) // g.batch_size, 200)))
        ds = ds.map_batches(RayVideoGenerator, batch_size=g.batch_size, batch_format="numpy",
                            compute=ActorPoolStrategy(size=size), num_gpus=1 if job.use_gpu else 0,
                            num_cpus=1 if job.use_gpu else 0.5,
                            fn_constructor_kwargs={"checkpoint": g.checkpoint, "manifest": job.data, "out": out,
                                                   "formats": list(g.formats), "fps": g.fps, "use_gpu": job.use_gpu})
        start, finished = time.time(), 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            finished += len(batch["video_id"])
            elapsed = time.time() - start
            log(f"  {finished}/{len(todo)} videos, {finished / max(elapsed, 1e-9):.2f} videos/s "
                f"({float(np.mean(batch['seconds'])):.2f} s/video per actor, {size} actor(s))")
    table = generation.gather(out)
    log(f"generated videos: {table.num_rows} -> {out}/{generation.GENERATED}")
    return out


def main(argv=None) -> int:
    args = job_argparser("Generate videos with Ray Data").parse_args(argv)
    run(load_job_config(GenerateJob, args.config, args.set).require("data", "generation.checkpoint"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
