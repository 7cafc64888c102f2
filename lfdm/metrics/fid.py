"""Frame-level FID and per-subject sFID (paper Table 5, new-domain adaptation).

The Inception network is loaded from a path the user gives: a TorchScript module with the call
signature of StyleGAN2-ADA's ``inception-2015-12-05.pt`` (uint8 images (N, 3, H, W) ->
``return_features=True`` -> (N, 2048) pool features). None can be downloaded here, and there is no
silent substitute: without the file, FID is not computed and the error says how to get it.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Sequence

import numpy as np
import torch

from lfdm.metrics.frechet import frechet_distance_of_samples


class InceptionWeightsError(RuntimeError):
    pass


def load_inception(path: str | None, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    if not path or not os.path.exists(path):
        raise InceptionWeightsError(
            f"frame FID needs Inception weights, and {path!r} is not a file. Pass evaluation.inception=PATH to "
            f"StyleGAN2-ADA's TorchScript FID network inception-2015-12-05.pt (from the StyleGAN2-ADA release); "
            f"it cannot be downloaded here")
    net = torch.jit.load(path, map_location=device).eval()

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        return net(images.to(device), return_features=True)
    return features


def frame_features(extract, videos: Sequence[np.ndarray], batch: int = 64) -> np.ndarray:
    """uint8 videos (T, H, W, 3) -> features of every frame, (sum T, D) float64."""
    frames = np.concatenate([np.asarray(v) for v in videos])
    out = []
    for start in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch])).permute(0, 3, 1, 2)
        out.append(extract(x).double().cpu().numpy())
    return np.concatenate(out)


def fid_and_sfid(real: np.ndarray, real_subjects: Sequence[str], fake: np.ndarray,
                 fake_subjects: Sequence[str]) -> Dict[str, object]:
    """FID over all frames; sFID = FID per subject (source image), then mean +- std (ddof 0)."""
    out = {"fid": frechet_distance_of_samples(real, fake),
           "n_real_frames": int(len(real)), "n_gen_frames": int(len(fake)), "per_subject": {}}
    rs, fs = np.asarray(real_subjects), np.asarray(fake_subjects)
    for s in sorted(set(rs) & set(fs)):
        r, f = real[rs == s], fake[fs == s]
        if min(len(r), len(f)) > 1:
            out["per_subject"][s] = {"fid": frechet_distance_of_samples(r, f),
                                     "n_real_frames": int(len(r)), "n_gen_frames": int(len(f))}
    values = [v["fid"] for v in out["per_subject"].values()]
    out["sfid_mean"] = float(np.mean(values)) if values else None
    out["sfid_std"] = float(np.std(values)) if values else None
    return out
