"""Synthetic motion dataset: written to disk exactly like a real dataset (videos + manifest.parquet).

Subjects differ in shape, colours and texture; classes are motions a flow warp can express:
translations in four directions, zoom in/out, rotation both ways, and a still class. Everything is
deterministic from the seed. It stands in for MUG / UTD-MHAD / NATOPS in the demo, tests and
benchmarks; ``lfdm.data.motion_classifier`` judges whether a video shows its class's motion.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterator, List, Tuple

import numpy as np
from tqdm import tqdm

from lfdm.data.manifest import Manifest, VideoRecord, read_manifest, write_manifest
from lfdm.data.synthetic_render import Subject, background, render_frame
from lfdm.io import storage
from lfdm.io.pixels import to_uint8
from lfdm.io.seeding import numpy_rng
from lfdm.io.video import write_video

CLASSES = ("move left", "move right", "move up", "move down", "zoom in", "zoom out",
           "rotate clockwise", "rotate counterclockwise", "stay still")
DIRECTIONS = {"move left": (-1, 0), "move right": (1, 0), "move up": (0, -1), "move down": (0, 1)}


@dataclass(frozen=True)
class SyntheticSpec:
    num_subjects: int = 8
    test_subjects: int = 2          # the last N subjects form the test split
    videos_per_class: int = 2       # per subject and class
    num_frames: int = 24
    image_size: int = 64
    fps: float = 12.0
    seed: int = 0

    def validate(self) -> "SyntheticSpec":
        if not 0 < self.test_subjects < self.num_subjects:
            raise ValueError("test_subjects must be between 1 and num_subjects - 1")
        if self.videos_per_class < 1 or self.num_frames < 2 or self.image_size < 16:
            raise ValueError("need videos_per_class >= 1, num_frames >= 2 and image_size >= 16")
        return self


# `make demo`'s dataset: 8 training and 2 held-out subjects, 3 videos per class and subject
DEMO_SPEC = SyntheticSpec(num_subjects=10, test_subjects=2, videos_per_class=3, num_frames=24, image_size=64)


@dataclass(frozen=True)
class Trajectory:
    """Object pose at normalised time 0 and 1 (linear in between); lengths in pixels, angle in radians."""
    start: Tuple[float, float]
    end: Tuple[float, float]
    radius: float
    scale_end: float
    angle_start: float
    angle_end: float

    def pose(self, t: float):
        center = np.array(self.start) + t * (np.array(self.end) - np.array(self.start))
        scale = self.scale_end ** t          # geometric: constant zoom speed
        return center, self.radius * scale, self.angle_start + t * (self.angle_end - self.angle_start)


def sample_trajectory(label: str, size: int, rng: np.random.Generator) -> Trajectory:
    mid = size / 2
    angle0 = float(rng.uniform(-0.4, 0.4))
    jitter = lambda scale: float(rng.uniform(-scale, scale) * size)  # noqa: E731
    if label in DIRECTIONS:
        radius = float(rng.uniform(0.14, 0.18) * size)
        travel = float(rng.uniform(0.32, 0.42) * size)
        dx, dy = DIRECTIONS[label]
        across = mid + jitter(0.12)
        along0 = mid - (dx + dy) * travel / 2 + jitter(0.04)
        start = (along0, across) if dx else (across, along0)
        end = (start[0] + dx * travel, start[1] + dy * travel)
        return Trajectory(start, end, radius, 1.0, angle0, angle0)
    center = (mid + jitter(0.08), mid + jitter(0.08))
    if label == "zoom in":
        return Trajectory(center, center, float(rng.uniform(0.12, 0.15) * size),
                          float(rng.uniform(1.6, 1.9)), angle0, angle0)
    if label == "zoom out":
        return Trajectory(center, center, float(rng.uniform(0.22, 0.26) * size),
                          float(rng.uniform(0.5, 0.6)), angle0, angle0)
    if label in ("rotate clockwise", "rotate counterclockwise"):
        turn = float(np.deg2rad(rng.uniform(75, 110))) * (1 if label == "rotate clockwise" else -1)
        return Trajectory(center, center, float(rng.uniform(0.19, 0.23) * size), 1.0, angle0, angle0 + turn)
    if label == "stay still":
        return Trajectory(center, center, float(rng.uniform(0.15, 0.22) * size), 1.0, angle0, angle0)
    raise ValueError(f"unknown synthetic class {label!r}")


def render_video(subject: Subject, label: str, spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, S, S, 3)."""
    bg = background(spec.image_size, rng)
    traj = sample_trajectory(label, spec.image_size, rng)
    frames = []
    for i in range(spec.num_frames):
        center, radius, angle = traj.pose(i / (spec.num_frames - 1))
        frames.append(render_frame(subject, bg, center, radius, angle))
    return to_uint8(np.stack(frames))


def plan(spec: SyntheticSpec) -> Iterator[Tuple[VideoRecord, Subject, str]]:
    """Every video of the dataset, in a fixed order, without rendering anything."""
    for s in range(spec.num_subjects):
        subject = Subject.make(s)
        split = "test" if s >= spec.num_subjects - spec.test_subjects else "train"
        for label, text in enumerate(CLASSES):
            for k in range(spec.videos_per_class):
                video_id = f"{subject.name}_{text.replace(' ', '_')}_{k:02d}"
                yield (VideoRecord(video_id=video_id, uri=f"videos/{video_id}.mp4", label=label,
                                   label_text=text, subject=subject.name, split=split,
                                   num_frames=spec.num_frames, fps=spec.fps, dataset="synthetic"),
                       subject, text)


def write_synthetic_dataset(out_dir: str, spec: SyntheticSpec = SyntheticSpec(),
                            progress: bool = True) -> Manifest:
    """Render and write the dataset; videos already on disk (from a killed run) are kept.

    The manifest is written last, so its presence means the dataset is complete.
    """
    spec.validate()
    storage.makedirs(out_dir)
    spec_uri = storage.join(out_dir, "synthetic.json")
    if storage.exists(spec_uri) and json.loads(storage.read_text(spec_uri)) != asdict(spec):
        raise ValueError(f"{out_dir} already holds a synthetic dataset with a different spec; "
                         f"choose another --out or delete it")
    storage.write_text(spec_uri, json.dumps(asdict(spec), indent=2))
    records: List[VideoRecord] = []
    items = list(plan(spec))
    for record, subject, text in tqdm(items, desc="rendering synthetic videos", unit="video",
                                      disable=not progress):
        uri = storage.join(out_dir, record.uri)
        if not storage.exists(uri):
            frames = render_video(subject, text, spec, numpy_rng(spec.seed, record.video_id))
            write_video(uri, frames, fps=spec.fps)
        records.append(record)   # URIs stay relative to the manifest: the folder can move
    manifest_uri = storage.join(out_dir, "manifest.parquet")
    write_manifest(Manifest(records, list(CLASSES)), manifest_uri)
    return read_manifest(manifest_uri)
