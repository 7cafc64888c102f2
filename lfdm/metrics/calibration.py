"""Calibrated video metrics: the model's FVD / KVD beside two references measured the same way.

At the N of a small evaluation FVD carries a large 1/N bias, so its raw value says little. Two references put
it on a scale, each against the same real test clips and at the same N as the generated set:
- real vs real: clips of other real videos (the training split's, other subjects), what a perfect
  generator would score at this N;
- static: every generated video's source frame repeated, what a generator that does not move scores.
``ratio = (model - real_vs_real) / (static - real_vs_real)``: 0 is as close to the test clips as other real
video, 1 is no closer than a still image (None when the two references are not separated).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from lfdm.metrics.fvd import fvd_kvd

REFERENCES = (("real_vs_real", "real vs real (other real clips)"), ("static", "static (source frame repeated)"))
HOW_TO_READ = ("Each row is measured against the same real test clips at the generated set's size. The ratio places "
               "the model between real video (0) and a still image of its source frame (1): "
               "(model - real vs real) / (static - real vs real). At small N, read KVD and the ratio, not raw FVD.")


def ratio(model: float, real_vs_real: float, static: float) -> Optional[float]:
    gap = static - real_vs_real
    return None if gap <= 0 else float((model - real_vs_real) / gap)


def calibrate(real: np.ndarray, model: Dict[str, float], references: Dict[str, np.ndarray],
              seed: int = 0) -> Dict[str, object]:
    """real (N_real, D) features; model: its fvd_kvd result; references: name -> (n, D) features."""
    out: Dict[str, object] = {name: fvd_kvd(real, references[name], seed=seed) for name, _ in REFERENCES}
    for metric in ("fvd", "kvd"):
        out[f"{metric}_ratio"] = ratio(model[metric], out["real_vs_real"][metric], out["static"][metric])
    return out
