"""What KVD could stage 2 reach with a perfect flow? Stage 1's reconstructions of the real test clips, scored like
the demo's generated videos.

Each real test clip of the evaluation protocol (16 frames at linspace over the video) is rebuilt from its frame 0
through stage 1's flow and occlusion of every frame (what a stage 2 that generated the real flows would give),
its I3D features taken with the reference weights, and FVD / KVD computed against the run's cached real-clip
features; its place between the run's real-vs-real and static references is printed beside the model's.

    python benchmarks/reconstruction_kvd.py --run demo_runs/default --json benchmarks/results/recon_kvd_seed0.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np

from lfdm.checkpoint import load_lfae
from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.io import storage
from lfdm.io.pixels import to_uint8
from lfdm.metrics.calibration import ratio
from lfdm.metrics.fvd import extract_features, fvd_kvd
from lfdm.metrics.i3d_weights import load_detector
from lfdm.runs.evaluation import real_items
from lfdm.runs.reconstruction import autoencoder_reconstruct


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished demo run (lfdm demo --out RUN)")
    p.add_argument("--json", help="where to write the numbers")
    args = p.parse_args(argv)
    manifest = os.path.join(args.run, "data", "manifest.parquet")
    evaluation = json.loads(storage.read_text(os.path.join(args.run, "evaluate", "results.json")))
    num_frames = evaluation["protocol"]["num_frames"]
    model, loaded = load_lfae(os.path.join(args.run, "lfae", "model"))
    size = loaded.config.data.image_size
    rebuild, records = autoencoder_reconstruct(model), read_manifest(manifest).by_id()
    videos = []
    for item in real_items(manifest, "test", num_frames, 1):
        frames = load_frames(records[item["source_video_id"]], item["frames"], size, cache=False)   # (T, 3, S, S)
        videos.append(to_uint8(rebuild(frames[:1], frames).clamp(0, 1).permute(0, 2, 3, 1)))        # (T, S, S, 3)
    features = extract_features(load_detector("reference")[0], np.stack(videos), batch_size=4)
    cached = glob.glob(os.path.join(args.run, "feature_cache", f"real_{evaluation['protocol']['hash']}_*.parquet"))
    real = np.stack(storage.read_parquet(cached[0]).column("features").to_pylist()).astype(np.float32)
    cal = evaluation["calibration"]
    references = {k: cal[k]["kvd"] for k in ("real_vs_real", "static")}
    rebuilt = fvd_kvd(real, features)
    out = {"run": args.run, "reconstructions": rebuilt, "references_kvd": references,
           "reconstructions_place": ratio(rebuilt["kvd"], references["real_vs_real"], references["static"]),
           "generated": {"fvd": evaluation["fvd"], "kvd": evaluation["kvd"], "place": cal["kvd_ratio"]}}
    print("| | FVD | KVD | place (0 real, 1 still) |\n|---|---|---|---|")
    print(f"| stage-1 reconstructions | {rebuilt['fvd']:.1f} | {rebuilt['kvd']:.2f} | {out['reconstructions_place']:.2f} |")
    print(f"| generated (the demo) | {evaluation['fvd']:.1f} | {evaluation['kvd']:.2f} | {cal['kvd_ratio']:.2f} |")
    if args.json:
        storage.write_text(args.json, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
