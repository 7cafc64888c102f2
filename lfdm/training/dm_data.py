"""Stage-2 training items sampled from the flow cache.

Item: x0 = cat(flow [- identity], 2 * occlusion - 1) over the K frames of a clip (frame 0 included,
its flow ~ identity), (3, K, h, w), or over its keyframes (every ``keyframe_stride``-th frame, the last
included); z0 (C, h, w); the class index; frame 0 (for colour-jittered z0).
Clip frames follow the data config's sampling mode (uniform / random / very_random).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lfdm.config import DataConfig
from lfdm.data.sampling import clip_indices
from lfdm.diffusion.keyframes import keyframe_count
from lfdm.io.seeding import numpy_rng
from lfdm.flow_target import flow_to_target
from lfdm.training.flow_cache import VideoFlows


class CachedClipDataset(Dataset):
    def __init__(self, videos: Sequence[VideoFlows], data: DataConfig, seed: int = 0, sampling: str | None = None,
                 residual_flow: bool = False, flow_scale: float = 1.0, keyframe_stride: int = 1):
        if not videos:
            raise ValueError("no cached videos to train on")
        self.videos = list(videos)
        self.data = data
        self.sampling = sampling or data.clip_sampling
        self.seed = seed
        self.residual_flow = residual_flow
        self.flow_scale = flow_scale
        keyframe_count(data.num_frames, keyframe_stride)                      # refuses a clip it cannot cut
        self.keyframe_stride = keyframe_stride

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> Dict[str, object]:
        video = self.videos[index % len(self.videos)]
        rng = numpy_rng(self.seed, index)
        idx = clip_indices(video.flow.shape[0], self.data.num_frames, self.sampling, rng)[::self.keyframe_stride]
        flow = torch.from_numpy(np.ascontiguousarray(video.flow[idx], dtype=np.float32))[None]
        occlusion = torch.from_numpy(np.ascontiguousarray(video.occlusion[idx], dtype=np.float32))[None]
        return {"x0": flow_to_target(flow, occlusion, self.residual_flow, self.flow_scale)[0],
                "z0": torch.from_numpy(video.z0.astype(np.float32)),
                "label": video.label,
                "frame0": torch.from_numpy(video.frame0).permute(2, 0, 1),
                "jitter_seed": int(rng.integers(0, 2**62))}


def motion_balance_weights(videos: Sequence[VideoFlows], num_classes: int, power: float, residual_flow: bool,
                           flow_scale: float) -> torch.Tensor:
    """(num_classes,) stage-2 loss weight per class: (mean class energy / the class's energy) ** power, clipped to
    [1/4, 4]; a class's energy is the mean square of its videos' flow targets (the flow channels of x0)."""
    energy, count = torch.zeros(num_classes, dtype=torch.float64), torch.zeros(num_classes, dtype=torch.float64)
    for video in videos:
        flow = torch.from_numpy(np.asarray(video.flow, dtype=np.float32))[None]          # (1, T, h, w, 2)
        occlusion = torch.from_numpy(np.asarray(video.occlusion, dtype=np.float32))[None]
        x0 = flow_to_target(flow, occlusion, residual_flow, flow_scale)                 # (1, 3, T, h, w)
        energy[video.label] += float(x0[:, :2].double().pow(2).mean())
        count[video.label] += 1
    present = count > 0
    energy = energy / count.clamp_min(1)
    weights = (energy[present].mean() / energy.clamp_min(1e-12)) ** power
    return torch.where(present, weights.clamp(0.25, 4.0), torch.ones_like(weights)).float()
