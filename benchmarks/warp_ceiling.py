"""How close can warping frame 0 come to each frame? The synthetic dataset's *true* motion as the flow.

Stage 1 rebuilds a frame by warping the source with a flow on the latent grid and letting the decoder paint what
the warp cannot (the background an object uncovers, edges the coarse flow blurs). This measures the warp alone
with a perfect flow, on the same protocol as ``lfdm.runs.reconstruction`` (test split, source frame 0, its 40
uniform driving frames, L1 in [0, 1] against copying the source): the true backward motion sampled at every
pixel, and sampled on an n x n grid then resized bilinearly (what a perfect flow on the latent grid gives).

    python benchmarks/warp_ceiling.py --manifest demo_runs/default/data/manifest.parquet --grids 16 32 \
        --json benchmarks/results/warp_ceiling_seed0.json
"""
from __future__ import annotations

import argparse
import json
from typing import Dict, List

import numpy as np
import torch

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.sampling import clip_indices
from lfdm.data.synthetic_truth import replay_trajectory, subject_of, true_backward_motion
from lfdm.models.warp import warp
from lfdm.runs.flow_fidelity import flow_points_px, synthetic_spec_beside
from lfdm.runs.reconstruction import NUM_DRIVING_FRAMES


def true_grid(traj, subject, t: float, n: int, size: int) -> torch.Tensor:
    """The true backward motion at time t on an n x n grid, as a grid_sample grid (1, n, n, 2), align_corners."""
    _, source = true_backward_motion(traj, subject, t, flow_points_px(n, n, size, True))
    return torch.tensor((source - 0.5) / (size - 1) * 2 - 1, dtype=torch.float32)[None]


def warp_true(source: torch.Tensor, traj, subject, t: float, n: int, size: int) -> torch.Tensor:
    """source (1, 3, S, S) warped by the true motion on an n x n grid, resized bilinearly to S x S as a model's is."""
    return warp(source, true_grid(traj, subject, t, n, size), align_corners=True)


def warp_ceiling(manifest: str, grids: List[int], split: str = "test") -> Dict[str, Dict[str, float]]:
    spec = synthetic_spec_beside(manifest)
    size = spec.image_size
    sums: Dict[str, np.ndarray] = {}                                         # label -> [frames, copy, full, *grids]
    for record in read_manifest(manifest).split(split).records:
        traj, subject = replay_trajectory(spec, record), subject_of(record)
        indices = clip_indices(record.num_frames, NUM_DRIVING_FRAMES, "uniform")
        frames = load_frames(record, [0, *indices], size).float()          # (1 + 40, 3, S, S)
        source = frames[:1]
        acc = sums.setdefault(record.label_text, np.zeros(3 + len(grids)))
        for driving, index in zip(frames[1:], indices):
            t = index / (record.num_frames - 1)
            warped = [warp_true(source, traj, subject, t, n, size) for n in (size, *grids)]
            acc += [1.0, float((source[0] - driving).abs().mean())] + [float((w[0] - driving).abs().mean())
                                                                      for w in warped]
    keys = ["full_resolution", *(f"grid_{n}" for n in grids)]
    # a still class has nothing to warp (its copy error is the video codec's, ~1e-5)
    return {label: {key: float(v / s[1]) for key, v in zip(keys, s[2:])}
            for label, s in sorted(sums.items()) if s[1] / s[0] > 1e-3}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="a synthetic dataset's manifest (lfdm demo writes RUN/data)")
    p.add_argument("--grids", type=int, nargs="+", default=[16], help="flow grid sizes (demo64's latent: 16)")
    p.add_argument("--split", default="test")
    p.add_argument("--json", help="write the table here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    table = warp_ceiling(args.manifest, args.grids, args.split)
    columns = ["full_resolution", *(f"grid_{n}" for n in args.grids)]
    print("| class | " + " | ".join(f"true flow, {c.replace('_', ' ')}: L1 / copy" for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label, row in table.items():
        print(f"| {label} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"manifest": args.manifest, "split": args.split, "per_class": table,
                       "protocol": "source frame 0 warped by the true backward motion (no decoder, no occlusion); "
                                   "40 uniform driving frames; L1 / the copy-the-source L1"}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
