"""The dataset manifest (docs/design.md, "Contracts"): one row per video, stored as Parquet.

Columns: video_id, uri, label (class index), label_text, subject, split, num_frames, fps,
frame_start (first file frame of a segment), crop ([y0, y1, x0, x1] or null), dataset.
The ordered class list is kept in the Parquet schema metadata, so a class index means the same
thing even when a split holds no video of that class.
"""
from __future__ import annotations

import collections
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import pyarrow as pa

from lfdm.io import storage

SCHEMA = pa.schema([
    ("video_id", pa.string()), ("uri", pa.string()), ("label", pa.int32()),
    ("label_text", pa.string()), ("subject", pa.string()), ("split", pa.string()),
    ("num_frames", pa.int32()), ("fps", pa.float32()), ("frame_start", pa.int32()),
    ("crop", pa.list_(pa.int32())), ("dataset", pa.string()),
])
CLASSES_KEY = b"lfdm.classes"


class ManifestError(ValueError):
    """A manifest that cannot be used: empty, malformed, or inconsistent."""


@dataclass(frozen=True)
class VideoRecord:
    video_id: str
    uri: str
    label: int
    label_text: str
    subject: str
    split: str
    num_frames: int
    fps: float = 0.0
    frame_start: int = 0
    crop: Optional[Tuple[int, int, int, int]] = None
    dataset: str = ""


@dataclass
class Manifest:
    records: List[VideoRecord]
    classes: List[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.classes:
            self.classes = sorted({r.label_text for r in self.records},
                                  key=lambda t: min(r.label for r in self.records if r.label_text == t))
        ids = [r.video_id for r in self.records]
        dup = [v for v, n in collections.Counter(ids).items() if n > 1]
        if dup:
            raise ManifestError(f"duplicate video_id(s) in manifest: {dup[:5]}")
        for r in self.records:
            if not 0 <= r.label < len(self.classes) or self.classes[r.label] != r.label_text:
                raise ManifestError(f"video {r.video_id}: label {r.label} / {r.label_text!r} does not "
                                    f"match the class list {self.classes}")

    def __len__(self) -> int:
        return len(self.records)

    def split(self, name: str) -> "Manifest":
        return Manifest([r for r in self.records if r.split == name], list(self.classes))

    def subjects(self) -> List[str]:
        return sorted({r.subject for r in self.records})

    def by_id(self) -> Dict[str, VideoRecord]:
        return {r.video_id: r for r in self.records}

    def to_table(self) -> pa.Table:
        rows = [asdict(r) for r in self.records]
        for row in rows:
            row["crop"] = list(row["crop"]) if row["crop"] is not None else None
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        return table.replace_schema_metadata({CLASSES_KEY: json.dumps(self.classes).encode()})


def write_manifest(manifest: Manifest, uri: str) -> None:
    if not manifest.records:
        raise ManifestError(f"refusing to write an empty manifest to {uri}")
    storage.write_parquet(manifest.to_table(), uri)


def read_manifest(uri: str) -> Manifest:
    if not storage.exists(uri):
        raise ManifestError(f"manifest not found: {uri}")
    try:
        table = storage.read_parquet(uri)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"unreadable manifest {uri}: {exc}") from exc
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if missing:
        raise ManifestError(f"manifest {uri} lacks column(s) {missing}; use `lfdm data index --dataset "
                            f"manifest` to build one from a CSV/Parquet with uri, label, subject, split")
    meta = table.schema.metadata or {}
    classes = json.loads(meta[CLASSES_KEY]) if CLASSES_KEY in meta else []
    records = []
    base = storage.parent(uri)
    for row in table.select(SCHEMA.names).to_pylist():
        row["crop"] = tuple(row["crop"]) if row["crop"] is not None else None
        row["uri"] = relative_to(row["uri"], base)
        records.append(VideoRecord(**row))
    if not records:
        raise ManifestError(f"manifest {uri} has no videos")
    return Manifest(records, classes)


def summary_table(manifest: Manifest) -> str:
    """Videos per split and class, then per split and subject, as aligned text."""
    splits = sorted({r.split for r in manifest.records})
    by_class = collections.Counter((r.label_text, r.split) for r in manifest.records)
    by_subject = collections.Counter((r.subject, r.split) for r in manifest.records)
    lines = []

    def block(title: str, keys: Sequence[str], counts) -> None:
        width = max([len(title)] + [len(k) for k in keys])
        lines.append(f"{title:<{width}}  " + "  ".join(f"{s:>6}" for s in splits) + "   total")
        for k in keys:
            cells = [counts[(k, s)] for s in splits]
            lines.append(f"{k:<{width}}  " + "  ".join(f"{c:>6}" for c in cells) + f"  {sum(cells):>6}")
        totals = [sum(counts[(k, s)] for k in keys) for s in splits]
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{c:>6}" for c in totals) + f"  {sum(totals):>6}")

    block("class", list(manifest.classes), by_class)
    lines.append("")
    block("subject", manifest.subjects(), by_subject)
    return "\n".join(lines)


def relative_to(uri: str, base_dir: str) -> str:
    """Resolve a possibly relative ``uri`` against the directory holding a manifest."""
    if storage.is_s3(uri) or os.path.isabs(uri):
        return uri
    return storage.join(base_dir, uri)
