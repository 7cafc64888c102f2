"""Shape preservation of generated videos against real ones, per class (``lfdm.metrics.shape``).

Real: the test split's clips under the FVD protocol's first-clip rule (they start at the source frame).
Generated: every finished video of a generation run, against the source frame it was generated from. Both go
through the same masks and scores, so the gap between them is the model's. With the stage-1 auto-encoder, the
same real clips reconstructed from their first frame through stage 1's own flows ("stage1") show how much of
that gap stage 1 already has: stage 2 can only generate flows stage 1 can express.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
import torch

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.io.pixels import to_uint8
from lfdm.metrics.shape import video_shape
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.runs.evaluation import generated_items, load_video, real_items
from lfdm.runs.reconstruction import autoencoder_reconstruct

KEEPS_SIZE = ("move", "rotate", "stay")       # classes whose motion keeps the object's size (area drift applies)
MARGIN = 0.10                                 # goal: generated shape IoU within this of real, per class


def shape_preservation(generated_run: str, manifest_uri: str, lfae: Optional[LatentFlowAutoencoder] = None) -> dict:
    """{"real", "generated"} (and "stage1" given ``lfae``): per class and overall mean shape IoU and area drift;
    "gap": real - generated IoU."""
    records = read_manifest(manifest_uri).by_id()
    fake = [i for i in generated_items(generated_run) if not i["missing"]]
    if not fake:
        raise ValueError(f"{generated_run} holds no finished generated video")
    first = load_video(fake[0], records, 0, None)
    num_frames, size = int(first.shape[0]), int(first.shape[1])
    scores = {**real_shapes(manifest_uri, num_frames, size, lfae), "generated": []}
    for item in fake:
        source = to_uint8(load_frames(records[item["source_video_id"]], [int(item["source_frame"])], size,
                                      cache=False)[0].permute(1, 2, 0).numpy())
        scores["generated"].append((item["label"], video_shape(load_video(item, records, size, None), source)))
    result = {kind: summarise(rows) for kind, rows in scores.items()}
    result["gap"] = {label: gap(result, label) for label in result["real"]["per_class"]}
    result.update(margin=MARGIN, frames=num_frames, within_margin=all(
        g is not None and g <= MARGIN for g in result["gap"].values()))
    return result


def real_shapes(manifest_uri: str, num_frames: int, size: int,
                lfae: Optional[LatentFlowAutoencoder] = None) -> Dict[str, List[tuple]]:
    """{"real": [(label, video_shape)] of the test split's clips, and "stage1": the same of their stage-1
    reconstructions, given ``lfae``}."""
    records = read_manifest(manifest_uri).by_id()
    scores: Dict[str, List[tuple]] = {"real": [], **({"stage1": []} if lfae is not None else {})}
    for item in real_items(manifest_uri, "test", num_frames, 1):
        video = load_video(item, records, size, num_frames)
        scores["real"].append((item["label"], video_shape(video, video[0])))
        if lfae is not None:
            scores["stage1"].append((item["label"], video_shape(reconstructed(lfae, video), video[0])))
    return scores


def reconstructed(lfae: LatentFlowAutoencoder, video: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same clip reconstructed by stage 1 from its first frame, (T, H, W, 3) uint8."""
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float().div(255).to(next(lfae.parameters()).device)
    return to_uint8(autoencoder_reconstruct(lfae)(frames[:1], frames).clamp(0, 1).permute(0, 2, 3, 1))


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
