"""Shared helper: probe many videos with a progress bar."""
from __future__ import annotations

from typing import Iterable, List

from tqdm import tqdm

from lfdm.io.video import VideoInfo, probe


def probe_all(uris: List[str], desc: str, progress: bool) -> List[VideoInfo]:
    items: Iterable[str] = tqdm(uris, desc=desc, unit="video", disable=not progress)
    return [probe(u) for u in items]
