"""Large-scale generation on Ray Data: ``python -m ray_jobs.generate --config ray_jobs/configs/demo_generate.yaml``.

1. The driver writes the generation manifest (OUTPUT/NAME/plan.parquet; the paper's protocol by default).
2. Videos whose metadata file exists are done; the rest go to an actor pool (one per GPU or CPU slot),
   each actor holding the pipeline once and generating ``batch_size`` videos per call.
3. Each video is written atomically (uint8 .npy and/or .mp4), then its metadata row
   (meta/VIDEO_ID.json) as the completion mark; a killed job resumes where it stopped.
4. The driver gathers the metadata into OUTPUT/NAME/generated.parquet.
Per-video seeds make every video independent of batch size, actor count and retries.
"""
from __future__ import annotations

import io
import json
import sys
import time

import numpy as np
import pyarrow as pa

from lfdm.data.manifest import read_manifest
from lfdm.io import storage
from lfdm.pipelines.generation_plan import plan_generation, rows_as_dicts
from lfdm.training.checkpoint import read_checkpoint, weights_hash
from ray_jobs.common import available_slots, init_ray, job_argparser, load_job_config


class VideoGenerator:
    """Ray Data callable class: the pipeline is loaded once per actor."""

    def __init__(self, checkpoint: str, manifest: str, out: str, formats, fps: float, use_gpu: bool, eta):
        import torch
        from lfdm.pipelines.image_to_video import load_pipeline
        self.device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.pipe = load_pipeline(checkpoint, device=self.device)
        self.records = read_manifest(manifest).by_id()
        self.out, self.formats, self.fps, self.eta = out, tuple(formats), fps, eta

    def __call__(self, batch: dict) -> dict:
        import torch
        from lfdm.data.datasets import load_frames
        from lfdm.io.outputs import encode, frames_uint8
        start = time.time()
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        size = self.pipe.config.data.image_size
        images = torch.cat([load_frames(self.records[r["source_video_id"]], [int(r["source_frame"])], size, cache=False)
                            for r in rows])
        first = rows[0]
        out = self.pipe(images, [r["label"] if r["label"] is not None else None for r in rows],
                        seeds=[int(r["seed"]) for r in rows], sampler=str(first["sampler"]), steps=int(first["steps"]),
                        guidance=float(first["guidance"]), eta=self.eta)
        seconds = (time.time() - start) / len(rows)
        for row, video in zip(rows, out.frames):
            frames = frames_uint8(video)                                  # (K, H, W, 3) uint8
            uris = {}
            if "npy" in self.formats:
                buf = io.BytesIO()
                np.save(buf, frames)
                uris["npy"] = storage.join(self.out, "videos", f"{row['video_id']}.npy")
                storage.write_bytes(uris["npy"], buf.getvalue())
            if "mp4" in self.formats:
                uris["mp4"] = storage.join(self.out, "videos", f"{row['video_id']}.mp4")
                storage.write_bytes(uris["mp4"], encode(frames, "mp4", self.fps))
            meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            meta.update(uri=uris.get("npy") or uris.get("mp4"), uris=uris, status="ok", seconds=seconds,
                        num_frames=int(frames.shape[0]))
            storage.write_text(storage.join(self.out, "meta", f"{row['video_id']}.json"), json.dumps(meta))
        return {"video_id": batch["video_id"], "seconds": np.full(len(rows), seconds)}


def done_ids(out: str) -> set:
    return {storage.basename(u)[:-5] for u in storage.listdir(storage.join(out, "meta")) if u.endswith(".json")}


def gather(out: str) -> pa.Table:
    rows = [json.loads(storage.read_text(u)) for u in storage.listdir(storage.join(out, "meta")) if u.endswith(".json")]
    for r in rows:
        r["uris"] = json.dumps(r["uris"])
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["video_id"]))
    storage.write_parquet(table, storage.join(out, "generated.parquet"))
    return table


def run(job, log=print) -> str:
    import ray
    from ray.data import ActorPoolStrategy
    g = job.generation
    out = job.run_uri
    ckpt = read_checkpoint(g.checkpoint)
    sample = ckpt.config.sample
    sampler, steps = g.sampler or sample.sampler, g.steps or sample.steps
    guidance = sample.guidance if g.guidance is None else g.guidance
    plan_uri = storage.join(out, "plan.parquet")
    plan = rows_as_dicts(plan_generation(read_manifest(job.data), g.num_videos, split=g.split, run_seed=g.seed,
                                         sampler=sampler, steps=steps, guidance=guidance,
                                         checkpoint_hash=weights_hash(g.checkpoint), labels=ckpt.labels,
                                         stochastic=g.stochastic))
    if storage.exists(plan_uri):
        if storage.read_parquet(plan_uri).to_pylist() != plan:
            raise ValueError(f"{out} holds a generation run with another plan; choose another name")
    else:
        storage.write_parquet(pa.Table.from_pylist(plan), plan_uri)
    done = done_ids(out)
    todo = [r for r in plan if r["video_id"] not in done]
    log(f"generation {out}: {len(plan)} videos planned, {len(plan) - len(todo)} done, {len(todo)} to do "
        f"({sampler}, {steps} steps, guidance {guidance})")
    if todo:
        init_ray(job.address)
        size = available_slots(job.use_gpu, -(-len(todo) // g.batch_size), job.actors)
        ds = ray.data.from_items(todo, override_num_blocks=max(1, min(len(todo) // g.batch_size, 200)))
        ds = ds.map_batches(VideoGenerator, batch_size=g.batch_size, batch_format="numpy",
                            compute=ActorPoolStrategy(size=size), num_gpus=1 if job.use_gpu else 0,
                            num_cpus=1 if job.use_gpu else 0.5,
                            fn_constructor_kwargs={"checkpoint": g.checkpoint, "manifest": job.data, "out": out,
                                                   "formats": list(g.formats), "fps": g.fps,
                                                   "use_gpu": job.use_gpu, "eta": g.eta})
        start, finished = time.time(), 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            finished += len(batch["video_id"])
            elapsed = time.time() - start
            log(f"  {finished}/{len(todo)} videos, {finished / max(elapsed, 1e-9):.2f} videos/s "
                f"({float(np.mean(batch['seconds'])):.2f} s/video per actor, {size} actor(s))")
    table = gather(out)
    log(f"generated videos: {table.num_rows} -> {storage.join(out, 'generated.parquet')}")
    return out


def main(argv=None) -> int:
    args = job_argparser("Generate videos with Ray Data").parse_args(argv)
    job = load_job_config(args.config, args.set, args.override).require("data", "generation.checkpoint")
    run(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
