"""Shape preservation of generated videos against real ones, per class (``lfdm.metrics.shape``).

Real: the test split's clips under the FVD protocol's first-clip rule (they start at the source frame).
Generated: every finished video of a generation run, against the source frame it was generated from. Both go
through the same masks and scores, so the gap between them is the model's.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.io.pixels import to_uint8
from lfdm.metrics.shape import video_shape
from lfdm.runs.evaluation import generated_items, load_video, real_items

KEEPS_SIZE = ("move", "rotate", "stay")       # classes whose motion keeps the object's size (area drift applies)
MARGIN = 0.10                                 # goal: generated shape IoU within this of real, per class


def shape_preservation(generated_run: str, manifest_uri: str) -> dict:
    """{"real", "generated"}: per class and overall mean shape IoU and area drift; "gap": real - generated IoU."""
    records = read_manifest(manifest_uri).by_id()
    fake = [i for i in generated_items(generated_run) if not i["missing"]]
    if not fake:
        raise ValueError(f"{generated_run} holds no finished generated video")
    first = load_video(fake[0], records, 0, None)
    num_frames, size = int(first.shape[0]), int(first.shape[1])
    scores: Dict[str, List[tuple]] = {"real": [], "generated": []}
    for item in real_items(manifest_uri, "test", num_frames, 1):
        video = load_video(item, records, size, num_frames)
        scores["real"].append((item["label"], video_shape(video, video[0])))
    for item in fake:
        source = to_uint8(load_frames(records[item["source_video_id"]], [int(item["source_frame"])], size,
                                      cache=False)[0].permute(1, 2, 0).numpy())
        scores["generated"].append((item["label"], video_shape(load_video(item, records, size, None), source)))
    result = {kind: summarise(rows) for kind, rows in scores.items()}
    result["gap"] = {label: gap(result, label) for label in result["real"]["per_class"]}
    result.update(margin=MARGIN, frames=num_frames, within_margin=all(
        g is not None and g <= MARGIN for g in result["gap"].values()))
    return result


def summarise(rows: List[tuple]) -> dict:
    """rows (label, video_shape result or None) -> per class and overall means; area drift over size-keeping
    classes only."""
    scored = [(label, s) for label, s in rows if s is not None]

    def stats(group: List[tuple]) -> dict:
        drifts = [s["area_drift"] for label, s in group if label.startswith(KEEPS_SIZE) and s["area_drift"] is not None]
        return {"n": len(group), "shape_iou": float(np.mean([s["shape_iou"] for _, s in group])),
                "area_drift": float(np.mean(drifts)) if drifts else None,
                "frames_without_object": int(sum(s["frames_without_object"] for _, s in group))}
    by_class: Dict[str, list] = defaultdict(list)
    for label, s in scored:
        by_class[label].append((label, s))
    return {"per_class": {label: stats(group) for label, group in sorted(by_class.items())},
            "overall": stats(scored) if scored else None}


def gap(result: dict, label: str) -> Optional[float]:
    real, fake = result["real"]["per_class"].get(label), result["generated"]["per_class"].get(label)
    return None if real is None or fake is None else real["shape_iou"] - fake["shape_iou"]
