"""A user's own manifest: CSV or Parquet with columns uri, label, subject, split.

Optional columns: video_id, label_text, num_frames, fps, frame_start. ``label`` may be a class
string or an integer; relative URIs are resolved against the table's directory. Videos are probed
so missing or undecodable files fail here, at index time, with their names.
"""
from __future__ import annotations

import os

import pyarrow as pa

from lfdm.data.manifest import Manifest, VideoRecord, relative_to
from lfdm.data.readers import LayoutError
from lfdm.data.readers._probe import probe_all
from lfdm.io import storage

REQUIRED = ("uri", "label", "subject", "split")


def _read_table(uri: str) -> pa.Table:
    if uri.endswith(".csv"):
        return storage.read_csv(uri)
    if uri.endswith(".parquet"):
        return storage.read_parquet(uri)
    raise LayoutError(f"{uri}: a generic manifest must be a .csv or .parquet file")


def index_table(uri: str, progress: bool = True) -> Manifest:
    if not storage.exists(uri):
        raise LayoutError(f"manifest table not found: {uri}")
    table = _read_table(uri)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise LayoutError(f"{uri} lacks required column(s) {missing}; need {list(REQUIRED)}")
    rows = table.to_pylist()
    if not rows:
        raise LayoutError(f"{uri} has no rows")
    base = storage.parent(uri)
    texts = [str(r.get("label_text") or r["label"]) for r in rows]
    if all(isinstance(r["label"], int) for r in rows) and "label_text" in table.column_names:
        order = {}
        for r, t in zip(rows, texts):
            order.setdefault(t, r["label"])
        classes = sorted(order, key=order.get)
    else:
        classes = sorted(set(texts))
    uris = [relative_to(str(r["uri"]), base) for r in rows]
    need_probe = [u for u, r in zip(uris, rows) if not r.get("num_frames")]
    probed = dict(zip(need_probe, probe_all(need_probe, "probing videos", progress)))
    records = []
    for i, (row, text, video_uri) in enumerate(zip(rows, texts, uris)):
        info = probed.get(video_uri)
        records.append(VideoRecord(
            video_id=str(row.get("video_id") or os.path.splitext(storage.basename(video_uri))[0]),
            uri=video_uri, label=classes.index(text), label_text=text, subject=str(row["subject"]),
            split=str(row["split"]), num_frames=int(row.get("num_frames") or info.num_frames),
            fps=float(row.get("fps") or (info.fps if info else 0.0)),
            frame_start=int(row.get("frame_start") or 0), dataset="manifest"))
    return Manifest(records, classes)
