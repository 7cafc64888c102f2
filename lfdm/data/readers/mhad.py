"""UTD-MHAD: a{action}_s{subject}_t{trial}_color.avi anywhere under ROOT (640x480 RGB).

Frames are cropped to rows 0:480, cols 156:492 (the depth maps' union box) before letterboxing.
Train subjects 1, 2, 3, 5; test 4, 6, 7, 8.
"""
from __future__ import annotations

import os
import re

from lfdm.data.catalog import MHAD_CLASSES, MHAD_CROP, MHAD_TEST_SUBJECTS, MHAD_TRAIN_SUBJECTS, split_of
from lfdm.data.manifest import Manifest, VideoRecord
from lfdm.data.readers import LayoutError
from lfdm.data.readers._probe import probe_all

NAME_RE = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_color\.avi$")


def index_mhad(root: str, progress: bool = True) -> Manifest:
    if not os.path.isdir(root):
        raise LayoutError(f"UTD-MHAD root is not a directory: {root}")
    found = []
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            m = NAME_RE.match(name)
            if m:
                a, s, t = (int(g) for g in m.groups())
                if not 1 <= a <= len(MHAD_CLASSES):
                    raise LayoutError(f"{os.path.join(dirpath, name)}: action {a} outside 1..27")
                found.append((a, s, t, os.path.join(dirpath, name)))
    if not found:
        raise LayoutError(f"no UTD-MHAD videos under {root}: expected files named a<action>_s<subject>_"
                          f"t<trial>_color.avi (e.g. a1_s1_t1_color.avi)")
    infos = probe_all([f[3] for f in found], "probing UTD-MHAD", progress)
    records = []
    for (a, s, t, path), info in zip(found, infos):
        split = split_of(str(s), MHAD_TRAIN_SUBJECTS, MHAD_TEST_SUBJECTS)
        if split is None:
            continue
        records.append(VideoRecord(
            video_id=f"a{a}_s{s}_t{t}", uri=path, label=a - 1, label_text=MHAD_CLASSES[a - 1],
            subject=str(s), split=split, num_frames=info.num_frames, fps=info.fps,
            crop=MHAD_CROP, dataset="mhad"))
    if not records:
        raise LayoutError(f"UTD-MHAD videos under {root} belong to no subject of the official split")
    return Manifest(records, list(MHAD_CLASSES))
