"""FVD (Unterthiner et al. 2018) and its class- and subject-conditional variants (paper Sec. 4.1), KVD,
bootstrap intervals, under a written-down, hashed protocol (docs/fvd_protocol.md).

FD is biased ~1/N: with few videos per group, cFVD/sFVD are mostly bias. Every group therefore
reports n_real and n_gen, groups with n <= 400 are flagged, and KVD (unbiased) sits beside FVD.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lfdm.metrics.frechet import frechet_distance_of_samples
from lfdm.metrics.kvd import kernel_distance

SMALL_GROUP = 400


@dataclass(frozen=True)
class FVDProtocol:
    num_frames: int
    weights: str                                   # detector id incl. a weights hash
    resize: int = 224
    interpolation: str = "bilinear, half-pixel centres (torch align_corners=False), no antialias"
    value_range: str = "uint8 x -> 2x/255 - 1 in [-1, 1]"
    clip_choice: str = "real: frames at linspace(0, T-1, num_frames) of each test video; generated: all frames"
    features: str = "I3D 400-d logits averaged over time"
    ddof: int = 1
    statistics: str = "float64 mean and covariance; trace term from eigenvalues"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def preprocess(videos, size: int = 224, rescale: bool = True) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 (or float with rescale=False, fed as is) -> (B, 3, T, size, size)."""
    x = torch.as_tensor(np.asarray(videos)) if not torch.is_tensor(videos) else videos
    if rescale and x.dtype != torch.uint8:
        raise ValueError("the FVD protocol takes uint8 videos; pass rescale=False to feed values as they are")
    x = x.float()
    b, t, h, w, c = x.shape
    x = x.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if rescale:
        x = 2 * x / 255 - 1
    return x.view(b, t, c, size, size).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def extract_features(detector, videos, *, batch_size: int = 8, rescale: bool = True,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """(N, T, H, W, 3) videos -> (N, 400) float32 features, ``batch_size`` videos at a time."""
    out = []
    for start in range(0, len(videos), batch_size):
        x = preprocess(videos[start:start + batch_size], rescale=rescale).to(device)
        out.append(detector(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def fvd_kvd(real: np.ndarray, fake: np.ndarray, ddof: int = 1, kvd_subsets: int = 100,
            kvd_subset_size: int = 1000, seed: int = 0) -> Dict[str, float]:
    fvd = frechet_distance_of_samples(real, fake, ddof)
    kvd, kvd_std = kernel_distance(real, fake, kvd_subsets, kvd_subset_size, seed)
    return {"fvd": fvd, "kvd": kvd, "kvd_std": kvd_std, "n_real": int(len(real)), "n_gen": int(len(fake))}


def bootstrap_fvd(real: np.ndarray, fake: np.ndarray, rounds: int, seed: int = 0, ddof: int = 1,
                  level: float = 0.95) -> Optional[list]:
    """Percentile interval of FVD over resamplings (with replacement) of both sets.

    Duplicates in a resample lower the effective N and FVD grows as N shrinks, so for small sets the interval
    sits above the point estimate, often excluding it: it measures spread, not a bias-corrected range."""
    if rounds <= 0:
        return None
    rng = np.random.default_rng(seed)
    values = [frechet_distance_of_samples(real[rng.integers(0, len(real), len(real))],
                                          fake[rng.integers(0, len(fake), len(fake))], ddof) for _ in range(rounds)]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def grouped_fvd(real: np.ndarray, real_groups: Sequence[str], fake: np.ndarray, fake_groups: Sequence[str], *,
                bootstrap: int = 0, seed: int = 0, ddof: int = 1) -> Dict[str, object]:
    """FVD per group (class -> cFVD, subject -> sFVD), then mean +- std over groups (std with ddof 0)."""
    real_groups, fake_groups = np.asarray(real_groups), np.asarray(fake_groups)
    groups = {}
    for g in sorted(set(real_groups) & set(fake_groups)):
        r, f = real[real_groups == g], fake[fake_groups == g]
        if len(r) <= ddof or len(f) <= ddof:
            groups[g] = {"fvd": None, "n_real": int(len(r)), "n_gen": int(len(f)), "small": True,
                         "note": f"too few videos for a covariance (need > {ddof})"}
            continue
        groups[g] = {"fvd": frechet_distance_of_samples(r, f, ddof),
                     "n_real": int(len(r)), "n_gen": int(len(f)),
                     "small": bool(min(len(r), len(f)) <= SMALL_GROUP),
                     "interval": bootstrap_fvd(r, f, bootstrap, seed, ddof)}
    values = [v["fvd"] for v in groups.values() if v["fvd"] is not None]
    missing = sorted((set(real_groups) ^ set(fake_groups)))
    return {"mean": float(np.mean(values)) if values else None, "std": float(np.std(values)) if values else None,
            "groups": groups, "unmatched_groups": missing,
            "small_groups": sorted(g for g, v in groups.items() if v["small"])}
