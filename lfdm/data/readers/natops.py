"""NATOPS: gestureXX/gXXsYY.avi (20 fps), cut into 20 repetitions by a segmentation file.

The segmentation file is the dataset's ``segmentation.txt``: blocks headed ``// Subject N``; inside,
one header line ``a,b,c`` per gesture (the i-th header is gesture i) followed by one line
``k:start,end`` per repetition (1-based, inclusive frame numbers). The JSON produced by the official
preprocessing ({subject: {gesture: [[start, end], ...]}}) is accepted too.
Frames are cropped to [10:239, 30:290]; subject 1 is dropped.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Optional, Tuple

from lfdm.data.catalog import (NATOPS_CLASSES, NATOPS_CROP, NATOPS_FPS, NATOPS_TEST_SUBJECTS,
                               NATOPS_TRAIN_SUBJECTS, split_of)
from lfdm.data.manifest import Manifest, VideoRecord
from lfdm.data.readers import LayoutError
from lfdm.data.readers._probe import probe_all

NAME_RE = re.compile(r"^g(\d{2})s(\d{2})\.avi$")
SUBJECT_RE = re.compile(r"^//\s*Subject\s*(\d+)", re.IGNORECASE)
HEADER_RE = re.compile(r"^\d*,\d*,\d*")
REP_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)")

Segments = Dict[int, Dict[int, List[Tuple[int, int]]]]   # subject -> gesture -> [(start, end)]


def parse_segmentation(path: str) -> Segments:
    if not os.path.isfile(path):
        raise LayoutError(f"NATOPS segmentation file not found: {path}")
    if path.endswith(".json"):
        with open(path) as f:
            raw = json.load(f)
        return {int(s): {int(g): [tuple(map(int, r)) for r in reps] for g, reps in gs.items()}
                for s, gs in raw.items()}
    segments: Segments = {}
    subject: Optional[int] = None
    gesture = 0
    with open(path) as f:
        for lineno, line in enumerate(f.read().splitlines(), 1):
            m = SUBJECT_RE.match(line.strip())
            if m:
                subject, gesture = int(m.group(1)), 0
                segments[subject] = {}
                continue
            if subject is None:
                continue
            rep = REP_RE.match(line)
            if rep:
                if gesture == 0:
                    raise LayoutError(f"{path}:{lineno}: repetition line before any gesture header")
                segments[subject][gesture].append((int(rep.group(2)), int(rep.group(3))))
            elif HEADER_RE.match(line.strip()) and line.strip():
                gesture += 1
                segments[subject][gesture] = []
    if not segments:
        raise LayoutError(f"{path} holds no '// Subject N' blocks: not a NATOPS segmentation file")
    return segments


def _find_segmentation(root: str) -> str:
    for rel in ("segmentation.txt", "segmentation.json", "data/segmentation.txt", "data/segmentation.json"):
        if os.path.isfile(os.path.join(root, rel)):
            return os.path.join(root, rel)
    raise LayoutError(f"no NATOPS segmentation file under {root} (looked for segmentation.txt/.json "
                      f"and data/segmentation.*); pass --segmentation PATH")


def index_natops(root: str, segmentation: Optional[str] = None, progress: bool = True) -> Manifest:
    if not os.path.isdir(root):
        raise LayoutError(f"NATOPS root is not a directory: {root}")
    videos = {}
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            m = NAME_RE.match(name)
            if m:
                videos[(int(m.group(1)), int(m.group(2)))] = os.path.join(dirpath, name)
    if not videos:
        raise LayoutError(f"no NATOPS videos under {root}: expected gestureXX/gXXsYY.avi (e.g. g01s03.avi)")
    segments = parse_segmentation(segmentation or _find_segmentation(root))
    kept = {k: v for k, v in videos.items()
            if split_of(str(k[1]), NATOPS_TRAIN_SUBJECTS, NATOPS_TEST_SUBJECTS)}
    if not kept:
        raise LayoutError(f"NATOPS videos under {root} belong to no subject of the official split")
    infos = dict(zip(kept, probe_all(list(kept.values()), "probing NATOPS", progress)))
    records = []
    for (gesture, subject), path in sorted(kept.items()):
        if not 1 <= gesture <= len(NATOPS_CLASSES):
            raise LayoutError(f"{path}: gesture {gesture} outside 1..24")
        reps = segments.get(subject, {}).get(gesture)
        if not reps:
            raise LayoutError(f"segmentation has no repetitions for subject {subject}, gesture {gesture} ({path})")
        for p, (start, end) in enumerate(reps, 1):
            if not 1 <= start <= end <= infos[(gesture, subject)].num_frames:
                raise LayoutError(f"{path}: repetition {p} spans frames {start}..{end} but the video has "
                                  f"{infos[(gesture, subject)].num_frames} frames")
            records.append(VideoRecord(
                video_id=f"g{gesture:02d}s{subject:02d}p{p:02d}", uri=path, label=gesture - 1,
                label_text=NATOPS_CLASSES[gesture - 1], subject=str(subject),
                split=split_of(str(subject), NATOPS_TRAIN_SUBJECTS, NATOPS_TEST_SUBJECTS),
                num_frames=end - start + 1, fps=infos[(gesture, subject)].fps or NATOPS_FPS,
                frame_start=start - 1, crop=NATOPS_CROP, dataset="natops"))
    return Manifest(records, list(NATOPS_CLASSES))
