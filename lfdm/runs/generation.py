"""A generation run: many videos from a full model, resumable, the same whatever runs it (here or on Ray).

Layout of RUN:
- ``plan.parquet``: one row per requested video (``lfdm.runs.plan``), written before any video; a rerun
  with other settings (sampler, steps, guidance, eta, seed, ...) is refused instead of mixing videos.
- ``videos/ID.npy`` (uint8 frames, for evaluation), ``videos/ID.mp4``, ``videos/ID.npz`` (frames, flows and
  occlusions), as ``formats`` asks; each written atomically.
- ``meta/ID.json``: the plan row plus output URIs and timing, written last: the video is done.
- ``generated.parquet``: every meta row, gathered when all are done.
Per-video seeds and batches fixed by the plan make every video the same, bit for bit, whatever worker makes it and
however often the run is killed and resumed (on the same hardware and library versions: other GPUs or kernel
libraries may round differently). Temporary files that a killed writer left behind are swept when a run starts
and when it ends.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import torch

from lfdm.checkpoint import read_info, weights_hash
from lfdm.data.datasets import load_frames
from lfdm.data.manifest import VideoRecord, read_manifest
from lfdm.diffusion.samplers import check_sampler
from lfdm.io import storage
from lfdm.io.outputs import encode, frames_uint8, npz_bytes
from lfdm.models.text import check_prompt
from lfdm.pipelines.image_to_video import GeneratedVideos, ImageToVideoPipeline
from lfdm.runs import RunError
from lfdm.runs.plan import plan_generation

FORMATS = ("npy", "mp4", "npz")
PLAN, GENERATED = "plan.parquet", "generated.parquet"


@dataclass(frozen=True)
class GenerationSettings:
    checkpoint: Optional[str] = None    # full model (kind lfdm)
    num_videos: int = 200
    split: str = "test"                 # where source frames come from ("train" for Table 2's gap)
    seed: int = 0
    sampler: Optional[str] = None       # None: the checkpoint's sample.* settings
    steps: Optional[int] = None
    guidance: Optional[float] = None
    eta: Optional[float] = None
    stochastic: bool = False            # null condition (paper Table 4)
    # {class: [free-text prompt, ...]}: videos from these sentences instead of the labels; each video's label is
    # the class its sentence should produce (lfdm.runs.plan), which evaluation scores it against
    prompts: Optional[Dict[str, Tuple[str, ...]]] = None
    batch_size: int = 4
    formats: Tuple[str, ...] = ("npy",)  # npy (uint8 frames, for evaluation), mp4, npz (+ flows, occlusions)
    fps: float = 10.0


def video_uri(run_uri: str, video_id: str, fmt: str) -> str:
    return storage.join(run_uri, "videos", f"{video_id}.{fmt}")


def meta_uri(run_uri: str, video_id: str) -> str:
    return storage.join(run_uri, "meta", f"{video_id}.json")


def prepare(run_uri: str, manifest_uri: str, settings: GenerationSettings) -> List[dict]:
    """The run's plan (written on the first call, checked on later ones); returns its rows."""
    g = settings
    if not g.checkpoint:
        raise RunError("a generation run needs generation.checkpoint (a full model)")
    unknown = sorted(set(g.formats) - set(FORMATS))
    if unknown or not g.formats:
        raise RunError(f"generation.formats={list(g.formats)}; choose from {list(FORMATS)}")
    info = read_info(g.checkpoint)
    s = info.config.sample
    sampler, steps = g.sampler or s.sampler, g.steps or s.steps
    guidance, eta = (s.guidance if g.guidance is None else g.guidance), (s.eta if g.eta is None else g.eta)
    try:
        check_sampler(sampler, steps, info.config.diffusion.timesteps, eta)
    except ValueError as exc:
        raise RunError(f"generation settings: {exc}") from None
    try:
        rows = [asdict(r) for r in plan_generation(
            read_manifest(manifest_uri), g.num_videos, split=g.split, run_seed=g.seed, sampler=sampler, steps=steps,
            guidance=guidance, eta=eta, checkpoint_hash=weights_hash(g.checkpoint), labels=info.labels,
            stochastic=g.stochastic, batch_size=g.batch_size, prompts=checked_prompts(g.prompts))]
    except ValueError as exc:
        raise RunError(f"generation settings: {exc}") from None
    plan_uri = storage.join(run_uri, PLAN)
    if storage.exists(plan_uri):
        old = [{"prompt": None, **r} for r in storage.read_parquet(plan_uri).to_pylist()]   # plans from before prompts
        if old != rows:
            differ = sorted({k for a, b in zip(old, rows) for k in a if a.get(k) != b.get(k)}
                            | ({"num_videos"} if len(old) != len(rows) else set()))
            raise RunError(f"{run_uri} holds a generation run with another plan (differs in {differ}); "
                           f"choose another run name")
    else:
        storage.write_parquet(pa.Table.from_pylist(rows), plan_uri)
    sweep(run_uri)
    return rows


def checked_prompts(prompts) -> Optional[Dict[str, List[str]]]:
    """generation.prompts as {class: [stripped sentence, ...]}, or an error naming what is wrong with it."""
    if not prompts:
        return None
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, (list, tuple)) and v
                                                 for k, v in prompts.items()):
        raise ValueError("generation.prompts must map each class to a non-empty list of sentences, "
                         "e.g. {\"move left\": [\"slide it to the left\"]}")
    return {label: [check_prompt(p) for p in sentences] for label, sentences in prompts.items()}


def sweep(run_uri: str) -> int:
    """Remove the temporary files a killed writer left in videos/ and meta/; returns how many. Only files older
    than a minute are taken, so a writer that is alive (another process finishing a batch) keeps its own, or those
    whose video is written already (a retry finished it; videos are never written twice)."""
    return sum(storage.remove_stale_temp_files(storage.join(run_uri, folder), older_than_s=60)
               + storage.remove_superseded_temp_files(storage.join(run_uri, folder))
               for folder in ("videos", "meta"))


def done_ids(run_uri: str) -> set:
    return {storage.basename(u)[:-5] for u in storage.listdir(storage.join(run_uri, "meta")) if u.endswith(".json")}


def to_do(run_uri: str, plan: Sequence[dict]) -> List[List[dict]]:
    """The plan's batches that still miss a video, whole: their finished videos are sampled again with them (and
    not written again), so every video comes from its planned batch."""
    done = done_ids(run_uri)
    return [rows for rows in planned_batches(plan) if any(r["video_id"] not in done for r in rows)]


def planned_batches(plan: Sequence[dict]) -> List[List[dict]]:
    """The plan's rows grouped by their ``batch``, in order."""
    batches: Dict[int, List[dict]] = {}
    for row in plan:
        batches.setdefault(int(row["batch"]), []).append(row)
    return [rows for _, rows in sorted(batches.items())]


def generate_rows(pipe: ImageToVideoPipeline, records: Dict[str, VideoRecord],
                  rows: Sequence[dict]) -> Tuple[torch.Tensor, GeneratedVideos]:
    """Source images (B, 3, S, S) and the videos of plan rows that share their sampler settings."""
    settings = {(r["sampler"], int(r["steps"]), float(r["guidance"]), float(r["eta"])) for r in rows}
    if len(settings) != 1:
        raise ValueError(f"rows of one pipeline call must share sampler, steps, guidance and eta; got {settings}")
    sampler, steps, guidance, eta = settings.pop()
    size = pipe.config.data.image_size
    images = torch.cat([load_frames(records[r["source_video_id"]], [int(r["source_frame"])], size, cache=False)
                        for r in rows])
    prompts = [r.get("prompt") for r in rows]
    out = pipe(images, [None if p else r["label"] for r, p in zip(rows, prompts)], prompts=prompts,
               seeds=[int(r["seed"]) for r in rows], sampler=sampler, steps=steps, guidance=guidance, eta=eta)
    return images, out


class VideoGenerator:
    """Generates and writes batches of plan rows; the pipeline is loaded once (per process, or per Ray actor)."""

    def __init__(self, checkpoint: str, manifest_uri: str, run_uri: str, formats: Sequence[str], fps: float,
                 device: torch.device):
        self.pipe = ImageToVideoPipeline.load(checkpoint, device=device)
        self.records = read_manifest(manifest_uri).by_id()
        self.run_uri, self.formats, self.fps = run_uri, tuple(formats), fps

    def __call__(self, rows: Sequence[dict]) -> float:
        """Samples one planned batch; writes the outputs, then the meta file, of each video not done yet; returns
        the seconds per video."""
        start = time.time()
        _, out = generate_rows(self.pipe, self.records, rows)
        seconds = (time.time() - start) / len(rows)
        done = done_ids(self.run_uri)
        for i, row in enumerate(rows):
            if row["video_id"] in done:
                continue
            frames = frames_uint8(out.frames[i])                                  # (K, H, W, 3) uint8
            uris = {fmt: video_uri(self.run_uri, row["video_id"], fmt) for fmt in self.formats}
            for fmt, uri in uris.items():
                storage.write_bytes(uri, self._encode(fmt, frames, out, i))
            meta = {**row, "uri": uris.get("npy") or uris.get("npz") or uris["mp4"], "uris": uris, "status": "ok",
                    "seconds": seconds, "num_frames": int(frames.shape[0])}
            storage.write_text(meta_uri(self.run_uri, row["video_id"]), json.dumps(meta))
        return seconds

    def _encode(self, fmt: str, frames: np.ndarray, out: GeneratedVideos, i: int) -> bytes:
        if fmt == "npy":
            return npy_bytes(frames)
        if fmt == "npz":
            return npz_bytes(frames, out.flows[i], out.occlusions[i, 0])
        return encode(frames, fmt, self.fps)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def gather(run_uri: str) -> pa.Table:
    """Every meta row, sorted by video id, as RUN/generated.parquet."""
    rows = [json.loads(storage.read_text(u)) for u in storage.listdir(storage.join(run_uri, "meta"))
            if u.endswith(".json")]
    for r in rows:
        r["uris"] = json.dumps(r["uris"])
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["video_id"]))
    storage.write_parquet(table, storage.join(run_uri, GENERATED))
    return table


def generate_local(run_uri: str, manifest_uri: str, settings: GenerationSettings, device: torch.device,
                   log: Callable[[str], None] = print) -> pa.Table:
    """The whole run in this process (``lfdm generate run``); a rerun resumes."""
    plan = prepare(run_uri, manifest_uri, settings)
    todo = to_do(run_uri, plan)
    missing = len(plan) - len(done_ids(run_uri))
    log(f"generation {run_uri}: {len(plan)} videos planned, {len(plan) - missing} done, {missing} to do")
    if todo:
        generator = VideoGenerator(settings.checkpoint, manifest_uri, run_uri, settings.formats, settings.fps, device)
        for rows in todo:
            seconds = generator(rows)
            log(f"  batch {rows[0]['batch']}: {len(rows)} videos, {seconds:.2f} s/video")
    table = gather(run_uri)
    sweep(run_uri)
    return table
