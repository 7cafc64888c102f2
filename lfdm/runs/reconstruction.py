"""Stage-1 reconstruction evaluation (paper Table 3 protocol).

For every video of a split: source = frame 0; 40 uniformly sampled driving frames
(linspace(0, T-1, 40), padded with the last frame for shorter videos); the auto-encoder reconstructs
each driving frame from the source. Reported: mean |prediction - frame| on [0, 1] pixels, and the
"copy the source frame" baseline |frame_0 - frame| on the same frames.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from tqdm import tqdm

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.sampling import clip_indices
from lfdm.metrics.reconstruction import MeanAbsoluteError
from lfdm.models.autoencoder import LatentFlowAutoencoder

NUM_DRIVING_FRAMES = 40
# source (1, 3, S, S), frames (N, 3, S, S) -> reconstructions (N, 3, S, S), all in [0, 1]
Reconstruct = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def reconstructions(model: LatentFlowAutoencoder, source: torch.Tensor, frames: torch.Tensor,
                    batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """(chunk, prediction) for every ``batch_size`` of ``frames`` (N, 3, S, S), each reconstructed from
    ``source`` (1, 3, S, S) through its flow and occlusion (the decoder sees the source alone)."""
    skips = model.encode(source)
    for chunk, flow, occlusion in model.flows_from_source(source, frames, batch_size):
        yield chunk, model.decode(skips, source, flow, occlusion)


def autoencoder_reconstruct(model: LatentFlowAutoencoder, batch_size: int = 16) -> Reconstruct:
    """Each frame through its own flow from the source, as stage 1's decoder renders it."""
    model = model.eval()
    return lambda source, frames: torch.cat([p for _, p in reconstructions(model, source, frames, batch_size)])


@torch.no_grad()
def evaluate_reconstruction(model: LatentFlowAutoencoder, manifest_uri: str, split: str = "test", *,
                            image_size: int, batch_size: int = 16, device: str | torch.device = "cpu",
                            max_videos: Optional[int] = None, progress: bool = True) -> Dict[str, object]:
    records = read_manifest(manifest_uri).split(split).records[:max_videos]
    if not records:
        raise ValueError(f"{manifest_uri} has no videos in split {split!r}")
    model = model.to(device).eval()
    lfae, copy = MeanAbsoluteError(), MeanAbsoluteError()
    per_class: Dict[str, tuple] = {}
    for record in tqdm(records, desc=f"reconstruction ({split})", unit="video", disable=not progress):
        indices = clip_indices(record.num_frames, NUM_DRIVING_FRAMES, "uniform")
        frames = load_frames(record, [0, *indices], image_size).to(device)   # (1 + 40, 3, S, S)
        source, driving = frames[:1], frames[1:]
        for chunk, prediction in reconstructions(model, source, driving, batch_size):
            src = source.expand(chunk.shape[0], -1, -1, -1)
            lfae.update(prediction, chunk)
            copy.update(src, chunk)
            class_lfae, class_copy = per_class.setdefault(record.label_text, (MeanAbsoluteError(), MeanAbsoluteError()))
            class_lfae.update(prediction, chunk)
            class_copy.update(src, chunk)
    return {"split": split, "videos": len(records), "frames": lfae.count // (3 * image_size ** 2),
            "lfae_l1": lfae.value, "copy_source_l1": copy.value,
            "relative_to_copy": lfae.value / copy.value,
            "per_class": {label: {"lfae_l1": a.value, "copy_source_l1": b.value,
                                  "relative_to_copy": a.value / b.value if b.value else None}
                          for label, (a, b) in sorted(per_class.items())},
            "protocol": {"source": "frame 0", "driving": f"{NUM_DRIVING_FRAMES} uniform (linspace, last-frame padded)",
                         "range": "[0, 1] pixels", "metric": "mean absolute error"}}
