"""The best condition accuracy stage 2 can reach: the motion classifier on stage-1 reconstructions.

Stage 2 generates latent flows and stage 1's decoder turns them into frames. If the auto-encoder, given the flows
of the real video, already decodes a weaker motion (a zoom whose object grows less, a turn that blurs), no
stage 2 can generate that motion. For every video of a split: ``num_frames`` uniform frames (the clips that
generation makes), each reconstructed from frame 0; the training-free classifier judges the real clip and its
reconstruction. Per class: the accuracy of both, how many reconstructions lost the object, and the amount of
motion the reconstructions show over the real clips' along the class's own kind (the centroid shift along the
direction, the log-scale, the turn).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.motion_classifier import UNKNOWN, MotionEstimate, estimate_motion
from lfdm.data.sampling import clip_indices
from lfdm.data.synthetic import CLASSES, DIRECTIONS
from lfdm.io.pixels import to_uint8
from lfdm.metrics.accuracy import per_class_accuracy
from lfdm.runs.reconstruction import Reconstruct


def motion_amount(estimate: MotionEstimate, label: str) -> Optional[float]:
    """The estimate's motion along ``label``'s kind, signed so that the class's own motion is positive."""
    if label in DIRECTIONS:
        dx, dy = DIRECTIONS[label]
        return dx * estimate.translation[0] + dy * estimate.translation[1]
    if label.startswith("zoom"):
        return estimate.zoom if label == "zoom in" else -estimate.zoom
    if label.startswith("rotate"):
        return estimate.rotation if label == "rotate clockwise" else -estimate.rotation
    return None


@torch.no_grad()
def evaluate_reconstruction_motion(reconstruct: Reconstruct, manifest_uri: str, split: str = "test", *,
                                   num_frames: int, image_size: int) -> Dict[str, object]:
    records = read_manifest(manifest_uri).split(split).records
    if not records:
        raise ValueError(f"{manifest_uri} has no videos in split {split!r}")
    if any(r.label_text not in CLASSES for r in records):
        raise ValueError("motion accuracy of reconstructions needs the synthetic dataset's classes")
    real_labels, rec_labels, expected = [], [], []
    amounts: Dict[str, np.ndarray] = {}                                # label -> [reconstructed, real]
    lost: Dict[str, int] = {}
    for record in records:
        frames = load_frames(record, clip_indices(record.num_frames, num_frames, "uniform").tolist(), image_size)
        rebuilt = reconstruct(frames[:1], frames)                      # (K, 3, S, S)
        real, rec = (estimate_motion(to_uint8(x.permute(0, 2, 3, 1))) for x in (frames, rebuilt))
        real_labels.append(real.label)
        rec_labels.append(rec.label)
        expected.append(CLASSES.index(record.label_text))
        lost[record.label_text] = lost.get(record.label_text, 0) + int(rec.label == UNKNOWN)
        real_amount, rec_amount = motion_amount(real, record.label_text), motion_amount(rec, record.label_text)
        if real_amount is not None and UNKNOWN not in (real.label, rec.label):
            amounts.setdefault(record.label_text, np.zeros(2))[:] += (rec_amount, real_amount)
    rec_acc, real_acc = (per_class_accuracy(p, expected, CLASSES) for p in (rec_labels, real_labels))
    per_class = {label: {"n": v["n"], "accuracy": v["accuracy"], "real_accuracy": real_acc["per_class"][label]["accuracy"],
                         "object_lost": lost[label],
                         "motion_ratio": (float(amounts[label][0] / amounts[label][1])
                                          if label in amounts and abs(amounts[label][1]) > 1e-9 else None)}
                 for label, v in rec_acc["per_class"].items()}
    return {"split": split, "videos": len(records), "frames_per_video": num_frames,
            "accuracy": rec_acc["accuracy"], "real_accuracy": real_acc["accuracy"], "per_class": per_class,
            "protocol": "source frame 0; each of the clip's uniform frames reconstructed from it through its own "
                        "flow; motion classifier on the real clip and on the reconstruction; motion_ratio = "
                        "reconstructed / real motion along the class's kind, over clips where neither lost the object"}
