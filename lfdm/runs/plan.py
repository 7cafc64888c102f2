"""The generation plan (docs/design.md, "Contracts"): one row per requested video.

Paper protocol: N videos spread evenly over classes and the source subjects of a split (video i
gets class i mod C and subject (i div C) mod S, like the official MUG_gen); the source image is
frame 0 of a video of that subject, preferably one of that class, picked by a seeded draw. With prompts
({class: [sentence, ...]}, the class each sentence should produce), video i is generated from a sentence of its
class instead of the label: sentence (i div (C * S)) mod P, so every sentence meets every subject. The
per-video seed derives from (run seed, video_id), so a video is the same whatever batch, actor or
retry produces it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from lfdm.data.manifest import Manifest
from lfdm.io.seeding import derive_seed, numpy_rng


@dataclass(frozen=True)
class GenerationRow:
    video_id: str
    source_video_id: str
    source_uri: str
    source_frame: int
    label: Optional[str]          # None: stochastic generation from the null condition
    label_index: int              # -1 when stochastic
    subject: str
    seed: int
    sampler: str
    steps: int
    guidance: float
    eta: float
    checkpoint_hash: str
    batch: int                    # the pipeline call that makes it: batches are fixed by the plan
    prompt: Optional[str] = None  # free text the video is generated from; ``label`` is then the class it should show


def plan_generation(manifest: Manifest, num_videos: int, *, split: str, run_seed: int, sampler: str, steps: int,
                    guidance: float, eta: float, checkpoint_hash: str, labels: Optional[List[str]] = None,
                    stochastic: bool = False, batch_size: int = 1,
                    prompts: Optional[Mapping[str, Sequence[str]]] = None) -> List[GenerationRow]:
    """``batch_size`` consecutive videos share a pipeline call (``batch``): whoever generates a video, and however
    often a run is resumed, it is sampled in the same batch, so the output is the same bit for bit (batched kernels
    may round differently for other batch compositions)."""
    source = manifest.split(split)
    if not source.records:
        raise ValueError(f"no videos in split {split!r} to take source frames from")
    classes = labels or source.classes
    if prompts and stochastic:
        raise ValueError("a plan is either stochastic (no condition) or from prompts, not both")
    check_prompt_classes(prompts or {}, classes)
    prompted = [c for c in classes if (prompts or {}).get(c)]
    subjects = source.subjects()
    by_subject = {s: [r for r in source.records if r.subject == s] for s in subjects}
    rows = []
    for i in range(num_videos):
        label, prompt = classes[i % len(classes)], None
        if prompts:
            label = prompted[i % len(prompted)]
            choices = prompts[label]
            prompt = choices[(i // (len(prompted) * len(subjects))) % len(choices)]
        subject = subjects[(i // len(prompted if prompts else classes)) % len(subjects)]
        pool = [r for r in by_subject[subject] if r.label_text == label] or by_subject[subject]
        record = pool[int(numpy_rng(run_seed, "source", i).integers(len(pool)))]
        video_id = f"gen{i:06d}"
        rows.append(GenerationRow(
            video_id=video_id, source_video_id=record.video_id, source_uri=record.uri, source_frame=0,
            label=None if stochastic else label, label_index=-1 if stochastic else classes.index(label),
            subject=subject, seed=derive_seed(run_seed, video_id), sampler=sampler, steps=steps,
            guidance=guidance, eta=eta, checkpoint_hash=checkpoint_hash, batch=i // batch_size, prompt=prompt))
    return rows


def check_prompt_classes(prompts: Mapping[str, Sequence[str]], classes: Sequence[str]) -> None:
    """Prompts are grouped by the class they should produce: every group must name one of ``classes``."""
    unknown = sorted(set(prompts) - set(classes))
    if unknown:
        raise ValueError(f"prompts are grouped by the class they should produce; {unknown} are not among the "
                         f"model's labels {list(classes)}")
