"""Do stage 1's regions turn with a turning object? For every rotation video of a synthetic split: the true
turn at four driving frames, the turn of the dense flow on the object, and the turn of the region affine
A = aff_src aff_drv^-1 (sign-corrected where the flow predictor does) of the region whose motion the mask
weights most on the object; printed per class, every frame in the JSON.

    python benchmarks/region_turns.py --lfae RUN/lfae --manifest RUN/data/manifest.parquet --out turns.json

Turns are backward (driving -> source, as the flow): a clockwise turn of +50 deg reads -50. A region whose
affine does not follow the object leaves the mask only the regions' shifts to express a turn.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lfdm.checkpoint import load_lfae
from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.synthetic_truth import replay_trajectory, subject_of, true_backward_motion
from lfdm.io.flow_vis import grid_displacement
from lfdm.models.linalg2x2 import inverse2x2
from lfdm.runs.flow_fidelity import flow_points_px, synthetic_spec_beside


def turn_of(matrix: np.ndarray) -> np.ndarray:
    """(..., 2, 2) -> angle (deg) of the rotation closest to each matrix."""
    return np.degrees(np.arctan2(matrix[..., 1, 0] - matrix[..., 0, 1], matrix[..., 0, 0] + matrix[..., 1, 1]))


def fitted_turn(points: np.ndarray, moved: np.ndarray) -> float:
    """Least-squares rotation (deg) taking centred points (N, 2) to centred moved points (N, 2)."""
    cross = (points[:, 0] * moved[:, 1] - points[:, 1] * moved[:, 0]).sum()
    return float(np.degrees(np.arctan2(cross, (points * moved).sum())))


@torch.no_grad()
def region_turns(lfae_uri: str, manifest: str, split: str = "test", frames_per_video: int = 4) -> list:
    model, _ = load_lfae(lfae_uri)
    model.eval()
    spec = synthetic_spec_beside(manifest)
    mask = {}
    model.flow_predictor.mask.register_forward_hook(lambda m, i, o: mask.update(w=torch.softmax(o.float(), 1)))
    rows = []
    for record in read_manifest(manifest).split(split).records:
        if not record.label_text.startswith("rotate"):
            continue
        traj, subject = replay_trajectory(spec, record), subject_of(record)
        indices = np.linspace(0, record.num_frames - 1, frames_per_video + 1).round().astype(int)[1:]
        frames = load_frames(record, [0, *indices.tolist()], spec.image_size)
        flow, _, source_regions, driving_regions = model.estimate_flow(
            frames[:1].expand(len(indices), -1, -1, -1), frames[1:])
        affine = source_regions["affine"] @ inverse2x2(driving_regions["affine"])      # (n, K, 2, 2)
        if model.cfg.revert_axis_swap:
            affine = affine * torch.sign(affine[:, :, 0:1, 0:1])
        affine = affine.numpy()
        flow = flow.numpy()                                                             # (n, h, w, 2)
        points = flow_points_px(flow.shape[1], flow.shape[2], spec.image_size, model.cfg.align_corners)
        predicted = np.stack(grid_displacement(flow), -1) * (spec.image_size / (flow.shape[2] - 1))
        weights = mask["w"].permute(0, 2, 3, 1).numpy()                                # (n, h, w, K+1)
        for k, index in enumerate(indices):
            t = index / (record.num_frames - 1)
            inside, source = true_backward_motion(traj, subject, t, points)
            centre = traj.pose(t)[0]
            local = points[inside] - centre
            on_object = weights[k][inside].mean(0)                                      # (K+1,) background first
            region = int(on_object[1:].argmax())
            rows.append({"label": record.label_text, "shape": subject.shape, "frame": int(index),
                         "true_turn": fitted_turn(local, source[inside] - centre),
                         "flow_turn": fitted_turn(local, local + predicted[k][inside]),
                         "region_turn": float(turn_of(affine[k, region])), "region": region,
                         "region_weight": float(on_object[1 + region]), "background_weight": float(on_object[0])})
    return rows


def summary(rows: list) -> str:
    lines = ["| class | frames | mean true turn | flow turn / true | dominant region's turn / true | its mask weight |",
             "|---|---|---|---|---|---|"]
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        true = np.array([r["true_turn"] for r in mine])
        ratio = lambda key: float((np.array([r[key] for r in mine]) * np.sign(true)).sum() / np.abs(true).sum())  # noqa
        lines.append(f"| {label} | {len(mine)} | {np.abs(true).mean():.0f} deg | {ratio('flow_turn'):.2f} | "
                     f"{ratio('region_turn'):.2f} | {np.mean([r['region_weight'] for r in mine]):.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lfae", required=True, help="a stage-1 model folder")
    p.add_argument("--manifest", required=True, help="a synthetic dataset's manifest")
    p.add_argument("--split", default="test")
    p.add_argument("--out", help="JSON of every frame's row")
    args = p.parse_args(argv)
    rows = region_turns(args.lfae, args.manifest, args.split)
    if not rows:
        raise SystemExit(f"{args.manifest} has no rotation videos in split {args.split!r}")
    print(summary(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"lfae": args.lfae, "manifest": args.manifest, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
