"""Evaluation on Ray Data: ``python -m ray_jobs.evaluate --config ray_jobs/configs/demo_evaluate.yaml``.

The run is lfdm.runs.evaluation's (protocol, real-clip choice, feature table, cached real features,
metrics; ``lfdm eval run`` is the same run in one process); this job only spreads the I3D feature extraction
over Ray Data actors, once per evaluation (every clip it lacks in one pass). Rows given to the actors are fixed
chunks of the item list (each kind sorted by id), so the features do not depend on how many blocks or actors run.
"""
from __future__ import annotations

import json
import sys
from typing import List

import numpy as np
import pyarrow as pa

from lfdm.device import pick_device
from lfdm.io import storage
from lfdm.runs import evaluation
from ray_jobs.common import EvaluateJob, available_slots, init_ray, job_argparser, load_job_config


class RayFeatureExtractor:
    """Ray Data callable class around lfdm's FeatureExtractor; each row is a chunk of items (JSON)."""

    def __init__(self, weights: str, manifest: str, image_size: int, num_frames: int, use_gpu: bool):
        self.extract = evaluation.FeatureExtractor(weights, manifest, image_size, num_frames, pick_device(use_gpu=use_gpu))

    def __call__(self, batch: dict) -> dict:
        rows = {k: [] for k in evaluation.COLUMNS}
        for chunk in batch["chunk"]:
            for k, v in self.extract(json.loads(chunk)).items():
                rows[k] += list(v)
        return {k: np.stack(v) if k == "features" else np.asarray(v) for k, v in rows.items()}


def ray_extract(job: EvaluateJob):
    """``make(image_size, num_frames) -> extract`` over a Ray Data actor pool."""
    def make(image_size: int, num_frames: int):
        def extract(items: List[dict]) -> pa.Table:
            import ray
            from ray.data import ActorPoolStrategy
            chunks = [json.dumps(c) for c in evaluation.chunks(items, job.evaluation.batch_size)]
            init_ray(job.address)
            size = available_slots(job.use_gpu, len(chunks), job.actors)
            ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=min(len(chunks), 100))
            ds = ds.map_batches(RayFeatureExtractor, batch_size=1, batch_format="numpy",
                                compute=ActorPoolStrategy(size=size), num_gpus=1 if job.use_gpu else 0,
                                num_cpus=1 if job.use_gpu else 0.5,
                                fn_constructor_kwargs={"weights": job.evaluation.weights, "manifest": job.data,
                                                       "image_size": image_size, "num_frames": num_frames,
                                                       "use_gpu": job.use_gpu})
            parts = [evaluation.as_table({k: list(v) for k, v in b.items()})
                     for b in ds.iter_batches(batch_size=None, batch_format="numpy")]
            return pa.concat_tables(parts).sort_by("video_id")
        return extract
    return make


def run(job: EvaluateJob, log=print) -> dict:
    cache = job.evaluation.feature_cache or storage.join(job.output, "feature_cache")
    return evaluation.evaluate(job.run_uri, job.data, job.evaluation, ray_extract(job), cache_dir=cache,
                               device=pick_device(use_gpu=job.use_gpu), log=log)


def main(argv=None) -> int:
    args = job_argparser("Evaluate generated videos (FVD, cFVD, sFVD, KVD) with Ray Data").parse_args(argv)
    results = run(load_job_config(EvaluateJob, args.config, args.set).require("data", "evaluation.generated"))
    print(json.dumps({k: results[k] for k in ("fvd", "kvd", "cfvd_mean", "sfvd_mean") if k in results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
