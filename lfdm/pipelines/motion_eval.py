"""Condition accuracy on the synthetic dataset: do generated videos show the motion their label asks for?

Videos follow the generation plan (classes spread evenly over the subjects of a split, source = frame 0
of a video of that subject); each is judged by the training-free motion classifier.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from tqdm import tqdm

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.motion_classifier import accuracy, classify
from lfdm.data.synthetic import CLASSES
from lfdm.pipelines.generation_plan import plan_generation
from lfdm.pipelines.image_to_video import ImageToVideoPipeline


def evaluate_motion(pipe: ImageToVideoPipeline, manifest_uri: str, *, num_videos: int, split: str = "test",
                    seed: int = 0, sampler: Optional[str] = None, steps: Optional[int] = None, batch: int = 6,
                    progress: bool = True) -> Dict[str, object]:
    if list(pipe.labels) != list(CLASSES):
        raise ValueError("motion accuracy needs a model trained on the synthetic dataset's classes")
    manifest = read_manifest(manifest_uri)
    sampler, steps = sampler or pipe.config.sample.sampler, steps or pipe.config.sample.steps
    plan = plan_generation(manifest, num_videos, split=split, run_seed=seed, sampler=sampler, steps=steps,
                           guidance=pipe.config.sample.guidance, checkpoint_hash="", labels=list(pipe.labels))
    records = manifest.by_id()
    size = pipe.config.data.image_size
    predicted, expected = [], []
    for start in tqdm(range(0, len(plan), batch), desc="generate + classify", unit="batch", disable=not progress):
        rows = plan[start:start + batch]
        images = torch.cat([load_frames(records[r.source_video_id], [r.source_frame], size, cache=False) for r in rows])
        out = pipe(images, [r.label for r in rows], seeds=[r.seed for r in rows], sampler=sampler, steps=steps)
        for row, frames in zip(rows, out.frames):
            video = (frames.permute(1, 2, 3, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            predicted.append(classify(video))
            expected.append(row.label_index)
    result = accuracy(predicted, expected)
    result.update(sampler=sampler, steps=steps, split=split, subjects=sorted({r.subject for r in plan}))
    return result
