"""An evaluation run: real test clips and a generation run's videos -> I3D features -> FVD, cFVD, sFVD, KVD.

The protocol (docs/fvd_protocol.md) lives here once: which real clips stand for the test set (clip 0 of a
video at linspace over the whole video, further clips at starts seeded by a hash of the video id, never by
a worker), the feature table schema, and the cache key of real features (protocol hash, manifest digest,
frame size). ``evaluate`` takes the feature extraction as a function, so the same run works in this process
(``extract_local``) or spread over Ray Data actors (ray_jobs/evaluate.py). Corrupt or missing videos are
counted and excluded, never silently.

Feature table: video_id, kind (real / generated), label, subject, status ("ok" or why not), predicted
(motion-classifier class, -1 unknown, -2 not classified), features (400 floats); plus protocol_hash on disk.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lfdm.data.datasets import load_frames
from lfdm.data.manifest import read_manifest
from lfdm.data.motion_classifier import classify as classify_motion
from lfdm.data.sampling import clip_indices
from lfdm.data.synthetic import CLASSES as SYNTHETIC_CLASSES
from lfdm.io import storage
from lfdm.io.pixels import to_uint8
from lfdm.io.seeding import numpy_rng
from lfdm.metrics.fvd import FVDProtocol, extract_features
from lfdm.metrics.i3d_weights import load_detector
from lfdm.metrics.summary import compute_metrics, write_reports
from lfdm.runs import RunError, generation

FEATURE_DIM = 400
COLUMNS = ("video_id", "kind", "label", "subject", "status", "predicted", "features")
NOT_CLASSIFIED = -2

# extract(items) -> feature table (COLUMNS), sorted by video_id; an item with "classify" true also gets its motion class
Extract = Callable[[List[dict]], pa.Table]


@dataclass(frozen=True)
class EvaluationSettings:
    generated: Optional[str] = None     # the generation run to evaluate
    real_clips_per_video: int = 1
    weights: str = "reference"          # I3D weights: reference | i3d_torchscript.pt | TATS state dict
    bootstrap: int = 100                # rounds for the overall FVD interval
    group_bootstrap: int = 20           # rounds per class / subject
    batch_size: int = 4                 # clips per I3D forward
    feature_cache: Optional[str] = None  # where real-video features are cached (default: beside the run)
    inception: Optional[str] = None     # TorchScript Inception for frame FID (Table 5); none: FID skipped
    # FVD / KVD of two references beside the model's (lfdm.metrics.calibration): real clips of the training
    # split, and every generated video's source frame repeated; costs I3D passes over 2 x n_gen more clips.
    calibrate: bool = True


def clip_rule(clips_per_video: int, num_frames: int) -> str:
    return (f"real: {clips_per_video} clip(s) per test video, the first at linspace(0, T-1, {num_frames}), others at "
            f"starts seeded by a hash of the video id; generated: all frames")


def real_items(manifest_uri: str, split: str, num_frames: int, clips_per_video: int) -> List[dict]:
    """The real clips of the protocol, sorted by video id."""
    items = []
    for r in sorted(read_manifest(manifest_uri).split(split).records, key=lambda r: r.video_id):
        for j in range(clips_per_video):
            if j == 0:
                frames = clip_indices(r.num_frames, num_frames, "uniform")
            else:
                start = int(numpy_rng("real-clip", r.video_id, j).integers(0, max(1, r.num_frames - num_frames + 1)))
                frames = np.minimum(np.arange(start, start + num_frames), r.num_frames - 1)
            items.append({"video_id": f"{r.video_id}#{j}", "kind": "real", "label": r.label_text,
                          "subject": r.subject, "source_video_id": r.video_id, "frames": frames.tolist(), "uri": None})
    return items


def reference_items(manifest_uri: str, count: int, num_frames: int, clips_per_video: int) -> List[dict]:
    """``count`` real clips of the training split (other subjects than the test split's), chosen by a hash of
    their id, for the real-vs-real reference; fewer when the split has fewer clips."""
    items = real_items(manifest_uri, "train", num_frames, clips_per_video)
    items.sort(key=lambda i: hashlib.sha256(i["video_id"].encode()).hexdigest())
    return [{**i, "kind": "reference"} for i in sorted(items[:count], key=lambda i: i["video_id"])]


def static_items(generated: Sequence[dict], num_frames: int) -> List[dict]:
    """Each generated video's source frame repeated ``num_frames`` times: the generator that does not move."""
    return [{**i, "video_id": f"static:{i['video_id']}", "kind": "static", "uri": None, "missing": False,
             "frames": [i["source_frame"]] * num_frames} for i in generated]


def generated_items(run_uri: str) -> List[dict]:
    """One item per planned video of a generation run; ``missing`` when it never finished."""
    plan = storage.read_parquet(storage.join(run_uri, generation.PLAN)).to_pylist()
    done = generation.done_ids(run_uri)
    items = []
    for row in plan:
        vid = row["video_id"]
        meta = json.loads(storage.read_text(generation.meta_uri(run_uri, vid))) if vid in done else None
        items.append({"video_id": vid, "kind": "generated", "label": row["label"], "subject": row["subject"],
                      "source_video_id": row["source_video_id"], "source_frame": row["source_frame"],
                      "frames": None, "missing": meta is None,
                      "uri": meta["uri"] if meta else generation.video_uri(run_uri, vid, "npy")})
    return items


def load_video(item: dict, records: dict, image_size: int, num_frames: Optional[int]) -> np.ndarray:
    """uint8 (T, H, W, 3) of a real clip (from the manifest) or a generated video (.npy / .npz); raises if unusable."""
    if item["kind"] != "generated":                      # real, reference and static clips come from the dataset
        frames = load_frames(records[item["source_video_id"]], item["frames"], image_size, cache=False)
        return to_uint8(frames.permute(0, 2, 3, 1))
    uri = item["uri"]
    if uri.endswith(".npz"):
        with np.load(storage.bytes_io(uri), allow_pickle=False) as data:
            video = data["frames"]
    elif uri.endswith(".npy"):
        video = np.load(storage.bytes_io(uri), allow_pickle=False)
    else:
        raise ValueError(f"{uri}: evaluation reads .npy or .npz videos (generation.formats), not lossy video files")
    frames_ok = num_frames is None or video.shape[0] == num_frames
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or not frames_ok:
        raise ValueError(f"expected uint8 ({num_frames}, H, W, 3), got {video.dtype} {video.shape}")
    return video


def identity_columns(item: dict) -> Dict[str, str]:
    """The feature table's columns that name an item (None written as "")."""
    return {key: item[key] if item[key] is not None else "" for key in ("video_id", "kind", "label", "subject")}


class FeatureExtractor:
    """I3D features (and motion classes) of items; loaded once per process or Ray actor."""

    def __init__(self, weights: str, manifest_uri: str, image_size: int, num_frames: int, device: torch.device):
        self.detector, _ = load_detector(weights, device)
        self.records = read_manifest(manifest_uri).by_id()
        self.image_size, self.num_frames, self.device = image_size, num_frames, device

    def __call__(self, items: Sequence[dict]) -> Dict[str, list]:
        rows: Dict[str, list] = {k: [] for k in COLUMNS}
        videos = []
        for item in items:
            try:
                videos.append(load_video(item, self.records, self.image_size, self.num_frames))
                status = "ok"
            except Exception as exc:          # reported and excluded by the metrics
                videos.append(None)
                status = f"corrupt: {type(exc).__name__}: {exc}"[:300]
            for key, value in identity_columns(item).items():
                rows[key].append(value)
            rows["status"].append(status)
        good = [v for v in videos if v is not None]
        feats = iter(extract_features(self.detector, np.stack(good), batch_size=len(good), device=self.device)
                     if good else [])
        for item, video in zip(items, videos):
            rows["features"].append(next(feats) if video is not None else np.zeros(FEATURE_DIM, np.float32))
            classify = item.get("classify", False) and video is not None
            rows["predicted"].append(classify_motion(video) if classify else NOT_CLASSIFIED)
        return rows


def as_table(rows: Dict[str, list]) -> pa.Table:
    return pa.Table.from_pydict({k: [np.asarray(f, np.float32) for f in v] if k == "features"
                                 else [x.item() if hasattr(x, "item") else x for x in v] for k, v in rows.items()})


def chunks(items: Sequence[dict], size: int) -> List[List[dict]]:
    """Fixed chunks of the sorted item list: features do not depend on how many workers process them."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def extract_local(manifest_uri: str, settings: EvaluationSettings, device: torch.device) -> Callable[..., Extract]:
    """``make(image_size, num_frames) -> extract`` running the extractor in this process."""
    def make(image_size: int, num_frames: int) -> Extract:
        extractor = FeatureExtractor(settings.weights, manifest_uri, image_size, num_frames, device)

        def extract(items: List[dict]) -> pa.Table:
            parts = [as_table(extractor(c)) for c in chunks(items, settings.batch_size)]
            return pa.concat_tables(parts).sort_by("video_id")
        return extract
    return make


def manifest_digest(manifest_uri: str, split: str) -> str:
    """Key of a split's clips. Clips inside the manifest's folder count by their path from it, so a run directory
    copied or moved elsewhere keeps its cached features."""
    prefix = storage.parent(manifest_uri).rstrip("/") + "/"
    where = lambda uri: uri[len(prefix):] if uri.startswith(prefix) else uri  # noqa: E731
    rows = sorted((r.video_id, where(r.uri), r.num_frames, r.frame_start)
                  for r in read_manifest(manifest_uri).split(split).records)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def real_cache_uri(cache_dir: str, protocol: FVDProtocol, manifest_uri: str, image_size: int,
                   reference: Optional[int] = None) -> str:
    """Cached features of the test split's real clips, or (``reference=n``) of n training-split clips."""
    kind, split = ("real", "test") if reference is None else (f"reference{reference}", "train")
    return storage.join(cache_dir, f"{kind}_{protocol.digest()}_{manifest_digest(manifest_uri, split)}_{image_size}px.parquet")


def dataset_clip(item: dict) -> Optional[tuple]:
    """What a clip read from the dataset shows (its video and frames); None for a generated video."""
    return None if item["uri"] is not None else (item["source_video_id"], tuple(item["frames"]))


def extract_once(items: List[dict], extract: Extract) -> pa.Table:
    """``extract(items)``, each distinct dataset clip extracted once: the static reference repeats one source frame
    for every video generated from it (72 videos of the demo from 54 frames). The copies carry their own id, kind,
    label and subject."""
    first_id: Dict[tuple, str] = {}          # clip -> the video_id it is extracted under
    todo, copies = [], []
    for item in items:
        clip = dataset_clip(item)
        if clip is not None and clip in first_id:
            copies.append((item, first_id[clip]))
            continue
        if clip is not None:
            first_id[clip] = item["video_id"]
        todo.append(item)
    table = extract(todo)
    if not copies:
        return table
    by_id = {row["video_id"]: row for row in table.to_pylist()}
    rows = [{**by_id[source], **identity_columns(item)} for item, source in copies]
    return pa.concat_tables([table, pa.Table.from_pylist(rows, schema=table.schema)]).sort_by("video_id")


def features_by_kind(wanted: Dict[str, Tuple[Callable[[], List[dict]], Optional[str]]], extract: Extract,
                     log: Callable[[str], None]) -> Dict[str, pa.Table]:
    """Feature tables keyed by item kind, from ``wanted[kind] = (items, cache_uri or None)``. A kind whose cache
    exists is read from it; the others are extracted in one pass (each pass of the Ray job starts its actors and
    loads I3D anew) and cached where a URI is given."""
    tables: Dict[str, pa.Table] = {}
    todo: List[dict] = []
    for kind, (items, cache) in wanted.items():
        if cache and storage.exists(cache):
            log(f"features reused: {cache}")
            tables[kind] = storage.read_parquet(cache)
            continue
        group = items()
        if any(i["kind"] != kind for i in group):
            raise ValueError(f"items listed as {kind!r} carry another kind")
        todo += group
    extracted = extract_once(todo, extract) if todo else None
    for kind, (_, cache) in wanted.items():
        if kind in tables:
            continue
        tables[kind] = extracted.filter(pc.equal(extracted.column("kind"), kind))
        if cache:
            storage.write_parquet(tables[kind], cache)
            log(f"features: {tables[kind].num_rows} clips -> {cache}")
    return tables


def evaluate(run_uri: str, manifest_uri: str, settings: EvaluationSettings, make_extract: Callable[..., Extract], *,
             cache_dir: str, device: torch.device, log: Callable[[str], None] = print) -> dict:
    """Metrics of ``settings.generated`` against the test split, written to RUN (results.json, results.md,
    plots, features.parquet). ``make_extract(image_size, num_frames)`` gives the feature extraction; ``device``
    runs the frame-FID network when ``settings.inception`` is set."""
    ev = settings
    if not ev.generated:
        raise RunError("an evaluation run needs evaluation.generated (a generation run)")
    for folder in (run_uri, cache_dir):                      # what killed writers of earlier attempts left
        storage.remove_stale_temp_files(folder, older_than_s=60)
    gen_items = generated_items(ev.generated)
    present = [i for i in gen_items if not i["missing"]]
    if not present:
        raise RunError(f"{ev.generated} holds no finished generated video")
    first = load_video(present[0], {}, 0, None)
    num_frames, image_size = int(first.shape[0]), int(first.shape[1])
    _, weights_id = load_detector(ev.weights)
    protocol = FVDProtocol(num_frames=num_frames, weights=weights_id,
                           clip_choice=clip_rule(ev.real_clips_per_video, num_frames))
    classes = read_manifest(manifest_uri).classes
    classify = list(classes) == list(SYNTHETIC_CLASSES)
    extract = make_extract(image_size, num_frames)
    wanted = {"real": (lambda: real_items(manifest_uri, "test", num_frames, ev.real_clips_per_video),
                       real_cache_uri(cache_dir, protocol, manifest_uri, image_size)),
              "generated": (lambda: [{**i, "classify": classify} for i in present], None)}
    if ev.calibrate:
        wanted.update({
            "reference": (lambda: reference_items(manifest_uri, len(present), num_frames, ev.real_clips_per_video),
                          real_cache_uri(cache_dir, protocol, manifest_uri, image_size, reference=len(present))),
            "static": (lambda: static_items(present, num_frames), None)})
    tables = features_by_kind(wanted, extract, log)
    real, fake = tables["real"], tables["generated"]
    references = {"real_vs_real": tables["reference"], "static": tables["static"]} if ev.calibrate else None
    protocol_hash = protocol.digest()
    features_uri = storage.join(run_uri, "features.parquet")
    rows = [{**row, "protocol_hash": protocol_hash} for row in real.to_pylist() + fake.to_pylist()]
    storage.write_parquet(pa.Table.from_pylist(rows), features_uri)     # (Parquet may rename list fields: no concat)
    stochastic = any(i["label"] is None for i in gen_items)
    results = compute_metrics(real, fake, ev, classes if classify else None,
                              missing=[i["video_id"] for i in gen_items if i["missing"]], stochastic=stochastic,
                              references=references)
    if ev.inception:
        results["frame_fid"] = frame_fid(manifest_uri, ev.inception, present,
                                         real_items(manifest_uri, "test", num_frames, 1), image_size, device)
    results.update(protocol={**protocol.__dict__, "hash": protocol_hash}, features=features_uri,
                   generated=ev.generated)
    write_reports(results, run_uri)
    log(f"results: {storage.join(run_uri, 'results.json')}")
    return results


def frame_fid(manifest_uri: str, inception: str, generated: List[dict], real: List[dict], image_size: int,
              device: torch.device) -> dict:
    """Paper Table 5: FID over frames and sFID per subject, with the user's TorchScript Inception."""
    from lfdm.metrics.fid import fid_and_sfid, frame_features, load_inception
    records = read_manifest(manifest_uri).by_id()
    net = load_inception(inception, device)
    videos: Dict[str, list] = {"real": [], "fake": []}
    for kind, items in (("real", real), ("fake", generated)):
        for item in items:
            try:
                videos[kind].append((load_video(item, records, image_size, None), item["subject"]))
            except Exception:                              # counted by the FVD pass already
                continue
    feats = {k: frame_features(net, [v for v, _ in pairs]) for k, pairs in videos.items()}
    subjects = {k: [s for v, s in pairs for _ in range(len(v))] for k, pairs in videos.items()}
    return fid_and_sfid(feats["real"], subjects["real"], feats["fake"], subjects["fake"])
