"""Flow cache (docs/design.md, "Contracts"): stage-2 targets computed once by the frozen auto-encoder.

For every video: the backward flow and occlusion of every frame against frame 0, the latent z0 of
frame 0 and frame 0 itself, stored in shards ``shards/shard_NNNNN.npz`` (videos sorted by id, a
fixed number per shard). A shard is written atomically, so a rerun skips finished shards. Dtypes:
flow float32 (sub-pixel grid positions), occlusion and z0 float16, frame 0 uint8.
``cache.json`` records the auto-encoder's weights hash, the manifest and the shard layout.
The official code recomputed all K flows with the frozen LFAE on every training step instead.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from tqdm import tqdm

from lfdm.checkpoint import load_lfae, read_info, weights_hash
from lfdm.config import LFDMConfig
from lfdm.data.datasets import load_frames
from lfdm.data.manifest import VideoRecord, read_manifest
from lfdm.device import pick_device
from lfdm.io import storage
from lfdm.io.pixels import to_uint8
from lfdm.models.autoencoder import LatentFlowAutoencoder

META = "cache.json"


class FlowCacheError(ValueError):
    pass


@dataclass
class VideoFlows:
    video_id: str
    label: int
    label_text: str
    subject: str
    split: str
    flow: np.ndarray          # (T, h, w, 2) float32
    occlusion: np.ndarray     # (T, h, w) float16
    z0: np.ndarray            # (C, h, w) float16
    frame0: np.ndarray        # (S, S, 3) uint8


def shard_plan(records: Sequence[VideoRecord], shard_size: int) -> List[List[VideoRecord]]:
    ordered = sorted(records, key=lambda r: r.video_id)
    return [ordered[i:i + shard_size] for i in range(0, len(ordered), shard_size)]


def shard_uri(cache_uri: str, index: int) -> str:
    return storage.join(cache_uri, "shards", f"shard_{index:05d}.npz")


@torch.no_grad()
def compute_video_flows(model: LatentFlowAutoencoder, record: VideoRecord, image_size: int,
                        batch_size: int = 32, device="cpu") -> VideoFlows:
    frames = load_frames(record, range(record.num_frames), image_size).to(device)   # (T, 3, S, S)
    source = frames[:1]
    flows, occlusions = [], []
    for _, flow, occlusion in model.flows_from_source(source, frames, batch_size):
        flows.append(flow.float().cpu())
        occlusions.append(occlusion[:, 0].float().cpu())
    z0 = model.encode(source)[-1][0]
    return VideoFlows(record.video_id, record.label, record.label_text, record.subject, record.split,
                      torch.cat(flows).numpy(), torch.cat(occlusions).numpy().astype(np.float16),
                      z0.float().cpu().numpy().astype(np.float16),
                      to_uint8(source[0].permute(1, 2, 0)))


def write_shard(uri: str, items: Sequence[VideoFlows]) -> None:
    lengths = np.array([v.flow.shape[0] for v in items], np.int64)
    meta = [{k: getattr(v, k) for k in ("video_id", "label", "label_text", "subject", "split")} for v in items]
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), lengths=lengths,
             flow=np.concatenate([v.flow for v in items]), occlusion=np.concatenate([v.occlusion for v in items]),
             z0=np.stack([v.z0 for v in items]), frame0=np.stack([v.frame0 for v in items]))
    storage.write_bytes(uri, buf.getvalue())


def read_shard(uri: str) -> List[VideoFlows]:
    with np.load(io.BytesIO(storage.read_bytes(uri))) as data:
        meta = json.loads(str(data["meta"]))
        bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
        flow, occ, z0, frame0 = data["flow"], data["occlusion"], data["z0"], data["frame0"]
        return [VideoFlows(**m, flow=flow[a:b], occlusion=occ[a:b], z0=z0[i], frame0=frame0[i])
                for i, (m, a, b) in enumerate(zip(meta, bounds[:-1], bounds[1:]))]


def write_meta(cache_uri: str, meta: dict) -> None:
    storage.write_text(storage.join(cache_uri, META), json.dumps(meta, indent=2))


def read_meta(cache_uri: str) -> dict:
    uri = storage.join(cache_uri, META)
    if not storage.exists(uri):
        raise FlowCacheError(f"no flow cache at {cache_uri} (missing {META}); run `lfdm flows precompute`")
    return json.loads(storage.read_text(uri))


def missing_shards(cache_uri: str, num_shards: int) -> List[int]:
    return [i for i in range(num_shards) if not storage.exists(shard_uri(cache_uri, i))]


def load_cache(cache_uri: str, split: Optional[str] = None) -> Dict[str, VideoFlows]:
    """All videos of a complete cache (optionally one split), keyed by video id."""
    meta = read_meta(cache_uri)
    missing = missing_shards(cache_uri, meta["num_shards"])
    if missing:
        raise FlowCacheError(f"flow cache {cache_uri} is incomplete: {len(missing)} of {meta['num_shards']} "
                             f"shards missing (e.g. {missing[:3]}); rerun the precompute to finish it")
    out = {}
    for i in range(meta["num_shards"]):
        for v in read_shard(shard_uri(cache_uri, i)):
            if split is None or v.split == split:
                out[v.video_id] = v
    return out


def check_cache(cfg: LFDMConfig, lfae_uri: str, flows_uri: str) -> dict:
    """The cache's meta, after checking it was made by ``lfae_uri`` at the preset's frame size."""
    meta = read_meta(flows_uri)
    if meta["lfae_hash"] != weights_hash(lfae_uri):
        raise FlowCacheError(f"flow cache {flows_uri} was computed by another auto-encoder than {lfae_uri}; "
                             f"recompute it with `lfdm flows precompute --lfae {lfae_uri}`")
    if meta["image_size"] != cfg.data.image_size:
        raise FlowCacheError(f"flow cache frames are {meta['image_size']}px but the preset uses "
                             f"{cfg.data.image_size}px")
    return meta


def cache_layout(lfae_uri: str, manifest_uri: str, records: Sequence[VideoRecord], shard_size: int,
                 image_size: int) -> dict:
    return {"lfae": lfae_uri, "lfae_hash": weights_hash(lfae_uri), "manifest": manifest_uri,
            "image_size": image_size, "shard_size": shard_size,
            "num_shards": len(shard_plan(records, shard_size)), "num_videos": len(records)}


def prepare_cache(lfae_uri: str, manifest_uri: str, out_uri: str, shard_size: int, split: Optional[str]):
    """(records, shards, meta) of a cache run; refuses to mix shards of another auto-encoder or manifest."""
    manifest = read_manifest(manifest_uri)
    records = manifest.split(split).records if split else manifest.records
    if not records:
        raise FlowCacheError(f"{manifest_uri} has no videos{f' in split {split!r}' if split else ''}")
    image_size = read_info(lfae_uri).config.data.image_size
    meta = cache_layout(lfae_uri, manifest_uri, records, shard_size, image_size)
    meta["classes"] = manifest.classes
    if storage.exists(storage.join(out_uri, META)):
        old = read_meta(out_uri)
        keys = ("lfae_hash", "num_shards", "num_videos", "shard_size", "image_size")
        if any(old.get(k) != meta[k] for k in keys):
            raise FlowCacheError(f"{out_uri} holds a flow cache of another auto-encoder or manifest "
                                 f"({ {k: old.get(k) for k in keys} }); choose another --out")
    write_meta(out_uri, meta)
    storage.remove_stale_temp_files(storage.join(out_uri, "shards"), older_than_s=60)   # left by killed writers
    return records, shard_plan(records, shard_size), meta


def sweep_finished_shards(out_uri: str) -> int:
    """Once every shard is written: remove what writers killed mid-shard left, whatever its age (a retry wrote
    the shard whole); returns how many."""
    return storage.remove_superseded_temp_files(storage.join(out_uri, "shards"))


def precompute_local(lfae_uri: str, manifest_uri: str, out_uri: str, *, shard_size: int = 16,
                     split: Optional[str] = None, device: Optional[str] = None, progress: bool = True) -> dict:
    """`lfdm flows precompute`: every missing shard, on this machine."""
    device = pick_device(device)
    records, shards, meta = prepare_cache(lfae_uri, manifest_uri, out_uri, shard_size, split)
    todo = missing_shards(out_uri, len(shards))
    if todo:
        model, _ = load_lfae(lfae_uri, device=device)
        for i in tqdm(todo, desc="flow shards", unit="shard", disable=not progress):
            write_shard(shard_uri(out_uri, i),
                        [compute_video_flows(model, r, meta["image_size"], device=device) for r in shards[i]])
    sweep_finished_shards(out_uri)
    return {**meta, "computed_shards": len(todo), "skipped_shards": len(shards) - len(todo)}
