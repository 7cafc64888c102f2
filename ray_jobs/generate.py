"""Large-scale generation on Ray Data: ``python -m ray_jobs.generate --config ray_jobs/configs/demo_generate.yaml``.

The run is lfdm.runs.generation's (its layout, plan and resume rules; ``lfdm generate-run`` is the same run
in one process): the driver writes the plan, the planned batches that still miss a video go to an actor pool
(one per GPU or CPU slot) whose actors hold the pipeline once and sample one planned batch per call, and the
driver gathers the metadata into OUTPUT/NAME/generated.parquet. Actors lost with their node are restarted and
their batches retried; a video is written once (its meta file last), and always from its planned batch.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from lfdm.device import pick_device
from lfdm.io import storage
from lfdm.runs import generation
from ray_jobs.common import GenerateJob, available_slots, init_ray, job_argparser, load_job_config


class RayVideoGenerator:
    """Ray Data callable class around lfdm's VideoGenerator (loaded once per actor); each input row names one
    planned batch, which the actor reads from the run's plan."""

    def __init__(self, checkpoint: str, manifest: str, out: str, formats, fps: float, use_gpu: bool):
        self.generate = generation.VideoGenerator(checkpoint, manifest, out, formats, fps, pick_device(use_gpu=use_gpu))
        plan = storage.read_parquet(storage.join(out, generation.PLAN)).to_pylist()
        self.batches = {rows[0]["batch"]: rows for rows in generation.planned_batches(plan)}

    def __call__(self, batch: dict) -> dict:
        indices = [int(i) for i in batch["batch"]]
        seconds = [self.generate(self.batches[i]) for i in indices]
        return {"batch": batch["batch"], "videos": np.array([len(self.batches[i]) for i in indices]),
                "seconds": np.array(seconds)}


def run(job: GenerateJob, log=print) -> str:
    import ray
    from ray.data import ActorPoolStrategy
    g, out = job.generation, job.run_uri
    plan = generation.prepare(out, job.data, g)
    todo = generation.to_do(out, plan)
    missing = len(plan) - len(generation.done_ids(out))
    first = plan[0]
    log(f"generation {out}: {len(plan)} videos planned, {len(plan) - missing} done, {missing} to do "
        f"({first['sampler']}, {first['steps']} steps, guidance {first['guidance']}, {len(todo)} batches)")
    if todo:
        init_ray(job.address)
        size = available_slots(job.use_gpu, len(todo), job.actors)
        ds = ray.data.from_items([{"batch": rows[0]["batch"]} for rows in todo],
                                 override_num_blocks=max(1, min(len(todo), 200)))
        ds = ds.map_batches(RayVideoGenerator, batch_size=1, batch_format="numpy",
                            compute=ActorPoolStrategy(size=size), num_gpus=1 if job.use_gpu else 0,
                            num_cpus=1 if job.use_gpu else 0.5,
                            fn_constructor_kwargs={"checkpoint": g.checkpoint, "manifest": job.data, "out": out,
                                                   "formats": list(g.formats), "fps": g.fps, "use_gpu": job.use_gpu})
        start, finished = time.time(), 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            finished += int(np.sum(batch["videos"]))
            elapsed = time.time() - start
            log(f"  {finished} videos sampled, {finished / max(elapsed, 1e-9):.2f} videos/s "
                f"({float(np.mean(batch['seconds'])):.2f} s/video per actor, {size} actor(s))")
    table = generation.gather(out)
    generation.sweep(out)
    log(f"generated videos: {table.num_rows} -> {out}/{generation.GENERATED}")
    return out


def main(argv=None) -> int:
    args = job_argparser("Generate videos with Ray Data").parse_args(argv)
    run(load_job_config(GenerateJob, args.config, args.set).require("data", "generation.checkpoint"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
