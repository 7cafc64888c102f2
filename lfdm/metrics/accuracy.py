"""Classification accuracy, overall and per class (condition accuracy of generated videos)."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


def per_class_accuracy(predicted: Sequence[int], expected: Sequence[int], classes: Sequence[str]) -> Dict[str, object]:
    """{"n", "accuracy", "per_class": {name: {"n", "accuracy"}}}; a prediction outside 0..C-1 counts as wrong.
    Classes without an expected example are left out of per_class."""
    predicted, expected = np.asarray(predicted), np.asarray(expected)
    if predicted.shape != expected.shape:
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} expected classes")
    per_class = {}
    for k, name in enumerate(classes):
        sel = expected == k
        if sel.any():
            per_class[name] = {"n": int(sel.sum()), "accuracy": float((predicted[sel] == k).mean())}
    return {"n": int(len(expected)), "accuracy": float((predicted == expected).mean()) if len(expected) else 0.0,
            "per_class": per_class}
