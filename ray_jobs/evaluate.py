"""Evaluation on Ray Data: ``python -m ray_jobs.evaluate --config ray_jobs/configs/demo_evaluate.yaml``.

Real test clips and generated videos -> I3D features on Ray Data actors -> a Parquet feature table
-> FVD, cFVD (per class), sFVD (per subject), KVD, bootstrap intervals, group sizes -> results.json,
results.md and plots. Rows given to the actors are fixed chunks of the sorted video list, so the
features do not depend on how many blocks or actors run. Real features are cached under the
protocol hash. Corrupt or missing videos are counted and excluded, never silently.
"""
from __future__ import annotations

import hashlib
import json
import sys
from typing import Dict, List

import numpy as np
import pyarrow as pa

from lfdm.data.manifest import read_manifest
from lfdm.data.sampling import clip_indices
from lfdm.io import storage
from lfdm.io.seeding import numpy_rng
from lfdm.metrics.fvd import FVDProtocol
from ray_jobs.common import available_slots, init_ray, job_argparser, load_job_config
from lfdm.metrics.summary import compute_metrics, write_reports

FEATURE_DIM = 400


def load_video(item: dict, records: dict, image_size: int, num_frames: int | None) -> np.ndarray:
    """uint8 (T, H, W, 3) of a real clip (from the manifest) or a generated video (.npy); raises if unusable."""
    from lfdm.data.datasets import load_frames
    if item["kind"] == "real":
        frames = load_frames(records[item["source_video_id"]], item["frames"], image_size, cache=False)
        return (frames.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    video = np.load(storage.bytes_io(item["uri"]), allow_pickle=False)
    frames_ok = num_frames is None or video.shape[0] == num_frames
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or not frames_ok:
        raise ValueError(f"expected uint8 ({num_frames}, H, W, 3), got {video.dtype} {video.shape}")
    return video


class I3DFeatures:
    """Ray Data callable class: loads I3D once; each row is a chunk of videos (a JSON list)."""

    def __init__(self, weights: str, manifest: str, image_size: int, num_frames: int, use_gpu: bool,
                 classify: bool):
        import torch
        from lfdm.metrics.i3d_weights import load_detector
        self.device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.detector, _ = load_detector(weights, self.device)
        self.records = read_manifest(manifest).by_id()
        self.image_size, self.num_frames, self.classify = image_size, num_frames, classify

    def _load(self, item: dict) -> np.ndarray:
        return load_video(item, self.records, self.image_size, self.num_frames)

    def __call__(self, batch: dict) -> dict:
        from lfdm.metrics.fvd import extract_features
        rows: Dict[str, list] = {k: [] for k in ("video_id", "kind", "label", "subject", "status", "predicted", "features")}
        for chunk in batch["chunk"]:
            items, videos = json.loads(chunk), []
            for item in items:
                try:
                    videos.append(self._load(item))
                    status = "ok"
                except Exception as exc:          # reported and excluded by the driver
                    videos.append(None)
                    status = f"corrupt: {type(exc).__name__}: {exc}"[:300]
                for key in ("video_id", "kind", "label", "subject"):
                    rows[key].append(item[key] if item[key] is not None else "")
                rows["status"].append(status)
            good = [v for v in videos if v is not None]
            feats = iter(extract_features(self.detector, np.stack(good), batch_size=len(good), device=self.device)
                         if good else [])
            for video in videos:
                rows["features"].append(next(feats) if video is not None else np.zeros(FEATURE_DIM, np.float32))
                rows["predicted"].append(self._predict(video))
        return {k: np.stack(v) if k == "features" else np.asarray(v) for k, v in rows.items()}

    def _predict(self, video) -> int:
        if video is None or not self.classify:
            return -2
        from lfdm.data.motion_classifier import classify
        return classify(video)


def real_items(manifest_uri: str, split: str, num_frames: int, clips_per_video: int) -> List[dict]:
    """Clip 0 of a video: linspace over the whole video; extra clips: seeded random starts (hash of the id)."""
    items = []
    for r in sorted(read_manifest(manifest_uri).split(split).records, key=lambda r: r.video_id):
        for j in range(clips_per_video):
            if j == 0:
                frames = clip_indices(r.num_frames, num_frames, "uniform")
            else:
                start = int(numpy_rng("real-clip", r.video_id, j).integers(0, max(1, r.num_frames - num_frames + 1)))
                frames = np.minimum(np.arange(start, start + num_frames), r.num_frames - 1)
            items.append({"video_id": f"{r.video_id}#{j}", "kind": "real", "label": r.label_text,
                          "subject": r.subject, "source_video_id": r.video_id, "frames": frames.tolist(), "uri": None})
    return items


def generated_items(generated_uri: str) -> List[dict]:
    plan = storage.read_parquet(storage.join(generated_uri, "plan.parquet")).to_pylist()
    meta_dir = storage.join(generated_uri, "meta")
    done = {storage.basename(u)[:-5]: u for u in storage.listdir(meta_dir) if u.endswith(".json")}
    items = []
    for row in plan:
        meta = json.loads(storage.read_text(done[row["video_id"]])) if row["video_id"] in done else None
        uri = (meta or {}).get("uris", {}).get("npy") or storage.join(generated_uri, "videos", f"{row['video_id']}.npy")
        items.append({"video_id": row["video_id"], "kind": "generated", "label": row["label"],
                      "subject": row["subject"], "source_video_id": row["source_video_id"], "frames": None,
                      "uri": uri, "missing": meta is None})
    return items


def extract(job, items: List[dict], image_size: int, num_frames: int, classify: bool) -> pa.Table:
    import ray
    from ray.data import ActorPoolStrategy
    chunk = job.evaluation.batch_size
    chunks = [json.dumps(items[i:i + chunk]) for i in range(0, len(items), chunk)]
    init_ray(job.address)
    size = available_slots(job.use_gpu, len(chunks), job.actors)
    ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=min(len(chunks), 100))
    ds = ds.map_batches(I3DFeatures, batch_size=1, batch_format="numpy", compute=ActorPoolStrategy(size=size),
                        num_gpus=1 if job.use_gpu else 0, num_cpus=1 if job.use_gpu else 0.5,
                        fn_constructor_kwargs={"weights": job.evaluation.weights, "manifest": job.data,
                                               "image_size": image_size, "num_frames": num_frames,
                                               "use_gpu": job.use_gpu, "classify": classify})
    parts = [pa.Table.from_pydict({k: (list(v) if k == "features" else v.tolist()) for k, v in b.items()})
             for b in ds.iter_batches(batch_size=None, batch_format="numpy")]
    table = pa.concat_tables(parts)
    return table.sort_by("video_id")


def frame_fid(job, generated: List[dict], real: List[dict], image_size: int) -> dict:
    """Paper Table 5: FID over frames and sFID per subject, with the user's TorchScript Inception."""
    import torch
    from lfdm.metrics.fid import fid_and_sfid, frame_features, load_inception
    records = read_manifest(job.data).by_id()
    extract = load_inception(job.evaluation.inception, "cuda" if job.use_gpu and torch.cuda.is_available() else "cpu")
    videos = {"real": [], "fake": []}
    for kind, items in (("real", real), ("fake", generated)):
        for item in items:
            try:
                videos[kind].append((load_video(item, records, image_size, None), item["subject"]))
            except Exception:                              # counted by the FVD pass already
                continue
    feats = {k: frame_features(extract, [v for v, _ in pairs]) for k, pairs in videos.items()}
    subjects = {k: [s for v, s in pairs for _ in range(len(v))] for k, pairs in videos.items()}
    return fid_and_sfid(feats["real"], subjects["real"], feats["fake"], subjects["fake"])


def manifest_digest(manifest_uri: str, split: str) -> str:
    rows = sorted((r.video_id, r.uri, r.num_frames, r.frame_start) for r in read_manifest(manifest_uri).split(split).records)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def run(job, log=print) -> dict:
    from lfdm.data.synthetic import CLASSES as SYNTHETIC_CLASSES
    from lfdm.metrics.i3d_weights import load_detector
    ev = job.evaluation
    generated = ev.generated or storage.join(job.output, "generate")
    gen_items = generated_items(generated)
    plan = storage.read_parquet(storage.join(generated, "plan.parquet")).to_pylist()
    from lfdm.training.checkpoint import read_checkpoint
    gen_ckpt = read_checkpoint(job.generation.checkpoint) if job.generation.checkpoint else None
    meta_any = next((json.loads(storage.read_text(storage.join(generated, "meta", f"{i['video_id']}.json")))
                     for i in gen_items if not i["missing"]), None)
    if meta_any is None:
        raise ValueError(f"{generated} holds no finished generated video")
    num_frames = int(meta_any["num_frames"])
    image_size = gen_ckpt.config.data.image_size if gen_ckpt else int(np.load(storage.bytes_io(meta_any["uri"])).shape[1])
    _, weights_id = load_detector(ev.weights)
    protocol = FVDProtocol(num_frames=num_frames, weights=weights_id,
                           clip_choice=f"real: {ev.real_clips_per_video} clip(s) per test video, the first at "
                                       f"linspace(0, T-1, {num_frames}), others at seeded random starts; "
                                       f"generated: all frames")
    classes = read_manifest(job.data).classes
    classify = list(classes) == list(SYNTHETIC_CLASSES)
    cache_dir = ev.feature_cache or storage.join(job.output, "feature_cache")
    real_cache = storage.join(cache_dir, f"real_{protocol.digest()}_{manifest_digest(job.data, 'test')}_{image_size}px.parquet")
    if storage.exists(real_cache):
        real = storage.read_parquet(real_cache)
        log(f"real features: reused {real_cache}")
    else:
        real = extract(job, real_items(job.data, "test", num_frames, ev.real_clips_per_video), image_size, num_frames, False)
        storage.write_parquet(real, real_cache)
        log(f"real features: {real.num_rows} clips -> {real_cache}")
    present = [i for i in gen_items if not i["missing"]]
    fake = extract(job, present, image_size, num_frames, classify)
    features_uri = storage.join(job.run_uri, "features.parquet")
    protocol_hash = protocol.digest()
    rows = [{**row, "protocol_hash": protocol_hash} for row in real.to_pylist() + fake.to_pylist()]
    storage.write_parquet(pa.Table.from_pylist(rows), features_uri)     # (Parquet may rename list fields: no concat)
    missing = [i["video_id"] for i in gen_items if i["missing"]]
    results = compute_metrics(real, fake, ev, classes if classify else None, missing=missing,
                              stochastic=any(p["label"] is None for p in plan))
    if ev.inception:
        results["frame_fid"] = frame_fid(job, present, real_items(job.data, "test", num_frames, 1), image_size)
    results.update(protocol={**protocol.__dict__, "hash": protocol_hash}, features=features_uri,
                   generated=generated, checkpoint=job.generation.checkpoint)
    write_reports(results, job.run_uri)
    log(f"results: {storage.join(job.run_uri, 'results.json')}")
    return results


def main(argv=None) -> int:
    args = job_argparser("Evaluate generated videos (FVD, cFVD, sFVD, KVD) with Ray Data").parse_args(argv)
    job = load_job_config(args.config, args.set, args.override).require("data")
    results = run(job)
    print(json.dumps({k: results[k] for k in ("fvd", "kvd", "cfvd_mean", "sfvd_mean") if k in results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
