"""Does a generation model's motion depend on the subject's colours? Every held-out source frame of a synthetic
run, its hue turned round the colour circle, generated with its own class label and judged by the motion
classifier. Shape and texture stay; only colour changes, so a model that learned motion from shape gives the
same class at every hue, and one that learned "this colour scheme turns" does not.

    python benchmarks/hue_sensitivity.py --model RUN/dm/model --manifest RUN/data/manifest.parquet \
        --out hue.json [--hues 0 0.25 0.5 0.75] [--videos-per-class 2]

Prints accuracy per class and hue; the JSON also holds every video's estimate (class, turn, zoom, shift).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math

import numpy as np
import torch

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.motion_classifier import estimate_motion
from lfdm.data.transforms import JitterFactors, color_jitter
from lfdm.io.pixels import to_uint8
from lfdm.pipelines.image_to_video import ImageToVideoPipeline


def source_frames(manifest_uri: str, videos_per_class: int, image_size: int, split: str = "test"):
    """[(video_id, label_text, frame 0 (3, S, S) in [0, 1])]: the first ``videos_per_class`` per subject and class."""
    taken, out = collections.Counter(), []
    for record in read_manifest(manifest_uri).split(split).records:
        key = (record.subject, record.label_text)
        if taken[key] < videos_per_class:
            taken[key] += 1
            out.append((record.video_id, record.label_text, load_frames(record, [0], image_size)[0]))  # (3, S, S)
    return out


@torch.no_grad()
def judged_videos(pipe: ImageToVideoPipeline, jobs, seed: int = 0, batch_size: int = 6, **sampling) -> list:
    """jobs [(video_id, label, image (3, S, S))] -> one row each: what the motion classifier reads in the video
    generated from the image with its label (video i gets seed + i, whatever its batch; ``sampling``: the
    pipeline's sampler settings, the checkpoint's where left out)."""
    rows = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        out = pipe(torch.stack([image for _, _, image in chunk]), [label for _, label, _ in chunk],
                   seeds=[seed + start + i for i in range(len(chunk))], **sampling)
        for (vid, label, _), video in zip(chunk, out.frames):                 # video (3, T, S, S)
            e = estimate_motion(to_uint8(video.permute(1, 2, 3, 0)))
            rows.append({"video_id": vid, "label": label, "read_as": e.label_text, "correct": e.label_text == label,
                         "turn_deg": math.degrees(e.rotation), "zoom": e.zoom, "shift": list(e.translation)})
    return rows


def summary(rows: list) -> dict:
    """Rows of ``judged_videos`` -> per class and "all": n, accuracy and the mean motion read."""
    out = {}
    for label in list(dict.fromkeys(r["label"] for r in rows)) + ["all"]:
        picked = [r for r in rows if label in (r["label"], "all")]
        out[label] = {"n": len(picked), "accuracy": float(np.mean([r["correct"] for r in picked])),
                      "zoom": float(np.mean([r["zoom"] for r in picked])),
                      "shift": float(np.mean([math.hypot(*r["shift"]) for r in picked])),
                      "turn_deg": float(np.mean([abs(r["turn_deg"]) for r in picked]))}
    return out


def hue_sensitivity(pipe: ImageToVideoPipeline, sources, hues, seed: int = 0, batch_size: int = 6) -> list:
    """One row per (source, hue): the classifier's reading of the video generated from the hue-turned frame."""
    jobs = [(vid, label, color_jitter(image, JitterFactors(hue=hue)) if hue else image)
            for vid, label, image in sources for hue in hues]
    turns = [hue for _ in sources for hue in hues]
    return [{**row, "hue": hue} for row, hue in zip(judged_videos(pipe, jobs, seed, batch_size), turns)]


def table(rows: list, hues) -> str:
    per_hue = [summary([r for r in rows if r["hue"] == h]) for h in hues]
    lines = ["| class | " + " | ".join(f"hue +{h:g}" for h in hues) + " |", "|---" * (len(hues) + 1) + "|"]
    for label in per_hue[0]:
        cells = [f"{100 * s[label]['accuracy']:.0f} % ({s[label]['n']})" for s in per_hue]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a generation checkpoint (RUN/dm/model)")
    p.add_argument("--manifest", required=True, help="the synthetic run's manifest.parquet")
    p.add_argument("--out", required=True, help="JSON with the table's numbers and every video")
    p.add_argument("--hues", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    p.add_argument("--videos-per-class", type=int, default=2, help="per held-out subject")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    pipe = ImageToVideoPipeline.load(args.model, device=args.device)
    sources = source_frames(args.manifest, args.videos_per_class, pipe.config.data.image_size)
    rows = hue_sensitivity(pipe, sources, args.hues)
    print(table(rows, args.hues))
    with open(args.out, "w") as f:
        json.dump({"model": args.model, "manifest": args.manifest, "hues": args.hues, "sampler":
                   dataclasses.asdict(pipe.config.sample), "videos": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
