"""MUG facial expressions: ROOT/<subject 3 digits>/[session0|session1/]<expression>/<take>/*.jpg.

Subjects 002, 003 and 049 carry an extra session level. The official loader iterated
``["session0", "session0"]``: session1 was never used and those subjects' session0 videos were
listed twice. Here every session directory that exists is indexed once.
"""
from __future__ import annotations

import re
from typing import List

from lfdm.data.catalog import MUG_CLASSES, MUG_TEST_SUBJECTS, MUG_TRAIN_SUBJECTS, split_of
from lfdm.data.manifest import Manifest, VideoRecord
from lfdm.data.readers import LayoutError
from lfdm.data.readers._probe import probe_all
from lfdm.io import storage
from lfdm.io.video import list_frame_files

SUBJECT_RE = re.compile(r"^\d{3}$")
SESSION_RE = re.compile(r"^session\d+$")


def _takes(expression_dir: str) -> List[str]:
    return [u for u in storage.listdir(expression_dir) if storage.is_dir(u) and list_frame_files(u)]


def index_mug(root: str, progress: bool = True) -> Manifest:
    if not storage.is_dir(root):
        raise LayoutError(f"MUG root is not a directory: {root}")
    found = []  # (video_id, uri, expression, subject)
    subjects = [u for u in storage.listdir(root) if SUBJECT_RE.match(storage.basename(u)) and storage.is_dir(u)]
    for subject_dir in subjects:
        subject = storage.basename(subject_dir)
        children = storage.listdir(subject_dir)
        sessions = [c for c in children if SESSION_RE.match(storage.basename(c))]
        levels = [(storage.basename(s), s) for s in sessions] or [(None, subject_dir)]
        for session, base in levels:
            for expression in MUG_CLASSES:
                exp_dir = storage.join(base, expression)
                for take in _takes(exp_dir):
                    parts = [subject] + ([session] if session else []) + [expression, storage.basename(take)]
                    found.append(("_".join(parts), take, expression, subject))
    if not found:
        raise LayoutError(
            f"no MUG videos under {root}: expected ROOT/<subject 3 digits>/[sessionN/]<expression>/"
            f"<take>/*.jpg with expressions {', '.join(MUG_CLASSES)}")
    records = []
    kept = [f for f in found if split_of(f[3], MUG_TRAIN_SUBJECTS, MUG_TEST_SUBJECTS)]
    skipped = sorted({f[3] for f in found} - {f[3] for f in kept})
    if not kept:
        raise LayoutError(f"MUG videos found under {root}, but none of subjects {skipped} is in the "
                          f"official train/test split")
    infos = probe_all([f[1] for f in kept], "probing MUG", progress)
    for (video_id, uri, expression, subject), info in zip(kept, infos):
        records.append(VideoRecord(
            video_id=video_id, uri=uri, label=MUG_CLASSES.index(expression), label_text=expression,
            subject=subject, split=split_of(subject, MUG_TRAIN_SUBJECTS, MUG_TEST_SUBJECTS),
            num_frames=info.num_frames, fps=info.fps, dataset="mug"))
    if skipped and progress:
        print(f"MUG: skipped subjects outside the official split: {', '.join(skipped)}")
    return Manifest(records, list(MUG_CLASSES))
