"""Condition accuracy on the synthetic dataset: do generated videos show the motion their label asks for?

Videos follow the generation plan (classes spread evenly over the subjects of a split, source = frame 0
of a video of that subject); each is judged by the training-free motion classifier.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Dict, Mapping, Optional, Sequence

from tqdm import tqdm

from lfdm.data.manifest import read_manifest
from lfdm.data.motion_classifier import classify
from lfdm.data.synthetic import CLASSES
from lfdm.io.outputs import frames_uint8
from lfdm.metrics.accuracy import per_class_accuracy
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.runs.evaluation import generated_items, load_video
from lfdm.runs.generation import generate_rows, planned_batches
from lfdm.runs.plan import plan_generation


def evaluate_motion(pipe: ImageToVideoPipeline, manifest_uri: str, *, num_videos: int, split: str = "test",
                    seed: int = 0, batch: int = 6, progress: bool = True,
                    prompts: Optional[Mapping[str, Sequence[str]]] = None) -> Dict[str, object]:
    """Sampler settings are the pipeline config's ``sample.*`` (``pipe.with_overrides`` to change them).
    ``prompts`` {class: [sentence, ...]}: the videos come from these sentences, each scored against its class."""
    if list(pipe.labels) != list(CLASSES):
        raise ValueError("motion accuracy needs a model trained on the synthetic dataset's classes")
    manifest = read_manifest(manifest_uri)
    s = pipe.config.sample
    plan = [asdict(r) for r in plan_generation(manifest, num_videos, split=split, run_seed=seed, sampler=s.sampler,
                                               steps=s.steps, guidance=s.guidance, eta=s.eta, checkpoint_hash="",
                                               labels=list(pipe.labels), batch_size=batch, prompts=prompts)]
    records = manifest.by_id()
    predicted, expected = [], []
    for rows in tqdm(planned_batches(plan), desc="generate + classify", unit="batch", disable=not progress):
        _, out = generate_rows(pipe, records, rows)
        predicted += [classify(frames_uint8(frames)) for frames in out.frames]
        expected += [row["label_index"] for row in rows]
    result = per_class_accuracy(predicted, expected, CLASSES)
    result.update(sampler=s.sampler, steps=s.steps, split=split, subjects=sorted({r["subject"] for r in plan}))
    return result


def run_motion_accuracy(run_uri: str) -> Dict[str, object]:
    """Condition accuracy of a generation run's videos (lfdm.runs.generation) by the motion classifier alone: the
    accuracy an evaluation run reports, without its I3D pass. As there, videos never finished or unreadable are
    left out and named in ``excluded``."""
    predicted, expected, excluded = [], [], []
    for item in generated_items(run_uri):
        try:
            if item["missing"]:
                raise FileNotFoundError("never finished")
            video = load_video(item, {}, 0, None)
        except Exception as exc:          # left out and named, as the evaluation's extractor does
            excluded.append(f"{item['video_id']}: {type(exc).__name__}: {exc}"[:300])
            continue
        predicted.append(classify(video))
        expected.append(CLASSES.index(item["label"]))
    if not expected:
        raise ValueError(f"{run_uri} holds no readable generated video")
    return {**per_class_accuracy(predicted, expected, CLASSES), "excluded": excluded}
