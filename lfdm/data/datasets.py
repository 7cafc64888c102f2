"""torch Datasets over a manifest: frame pairs for stage 1, K-frame clips for stage 2.

Indices are virtual: item v reads video v mod N and draws its randomness from a generator seeded by
(seed, v), so an item is the same whatever DataLoader or Ray worker produces it, and a sampler can
visit a video many times with fresh augmentations (lfdm.training.batching).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lfdm.config import DataConfig
from lfdm.data.manifest import VideoRecord
from lfdm.data.sampling import clip_indices, pair_indices
from lfdm.data.transforms import JitterFactors, color_jitter, crop, letterbox, to_tensor
from lfdm.io.seeding import numpy_rng
from lfdm.io.pixels import to_uint8
from lfdm.io.video import read_frames


class ProcessedVideoCache:
    """LRU cache of whole videos after crop + letterbox, as uint8 (T, S, S, 3), within a byte budget.

    Rounding the letterboxed frames to uint8 is what the official loaders did too (cv2.resize of
    uint8 images). Training draws many pairs and clips per video, so each is decoded once.
    """

    def __init__(self, max_bytes: int = 2 * 2**30):
        self.max_bytes = max_bytes
        self._items: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
        self._bytes = 0

    def get(self, record: VideoRecord, image_size: int) -> np.ndarray:
        key = (record.uri, record.frame_start, record.num_frames, record.crop, image_size)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        indices = range(record.frame_start, record.frame_start + record.num_frames)
        frames = letterbox(crop(read_frames(record.uri, list(indices)), record.crop), image_size)
        frames = to_uint8(frames)
        self._items[key] = frames
        self._bytes += frames.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return frames


VIDEO_CACHE = ProcessedVideoCache()


def load_frames(record: VideoRecord, indices: Sequence[int], image_size: int, cache: bool = True) -> torch.Tensor:
    """Frames ``indices`` (relative to the record's segment), cropped and letterboxed -> (N, 3, S, S) in [0, 1]."""
    if cache:
        frames = VIDEO_CACHE.get(record, image_size)[np.asarray(indices, dtype=np.int64)]
        return to_tensor(frames.astype(np.float32) / 255)
    file_indices = [record.frame_start + int(i) for i in indices]
    frames = crop(read_frames(record.uri, file_indices), record.crop)
    return to_tensor(letterbox(frames, image_size))


class _Seeded(Dataset):
    def __init__(self, records: Sequence[VideoRecord], seed: int):
        if not records:
            raise ValueError(f"{type(self).__name__} needs at least one video")
        self.records = list(records)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def _item(self, index: int):
        return self.records[index % len(self.records)], numpy_rng(self.seed, index)


class FramePairDataset(_Seeded):
    """Stage-1 items: {"source", "driving"} (3, S, S) from one video, augmented as the official loader."""

    def __init__(self, records: Sequence[VideoRecord], data: DataConfig, *, augment: bool = True, seed: int = 0):
        super().__init__(records, seed)
        self.data = data
        self.augment = augment

    def __getitem__(self, index: int) -> Dict[str, object]:
        record, rng = self._item(index)
        pair = pair_indices(record.num_frames, rng)
        frames = load_frames(record, pair, self.data.image_size)       # (2, 3, S, S)
        if self.augment:
            if self.data.pair_time_flip and rng.random() < 0.5:
                frames = frames.flip(0)
            elif self.data.pair_horizontal_flip and rng.random() < 0.5:
                frames = frames.flip(-1)
            if self.data.pair_jitter > 0:
                j = self.data.pair_jitter
                frames = color_jitter(frames, JitterFactors.draw(rng, j, j, j, j))
        return {"source": frames[0].contiguous(), "driving": frames[1].contiguous(),
                "video_id": record.video_id}


class ClipDataset(_Seeded):
    """Stage-2 items: {"video": (3, K, S, S), "label", "label_text", "video_id", "subject", "frame_indices"}."""

    def __init__(self, records: Sequence[VideoRecord], data: DataConfig, *, sampling: str,
                 color_jitter: bool = False, seed: int = 0):
        super().__init__(records, seed)
        self.data = data
        self.sampling = sampling
        self.color_jitter = color_jitter

    def __getitem__(self, index: int) -> Dict[str, object]:
        record, rng = self._item(index)
        idx = clip_indices(record.num_frames, self.data.num_frames, self.sampling, rng)
        frames = load_frames(record, idx, self.data.image_size)        # (K, 3, S, S)
        if self.color_jitter:
            j = self.data.clip_jitter
            frames = color_jitter(frames, JitterFactors.draw(rng, j.brightness, j.contrast,
                                                              j.saturation, j.hue))
        return {"video": frames.permute(1, 0, 2, 3).contiguous(), "label": record.label,
                "label_text": record.label_text, "video_id": record.video_id,
                "subject": record.subject, "frame_indices": torch.from_numpy(idx)}
