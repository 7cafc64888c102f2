"""The one float -> uint8 pixel conversion: values in [0, 1], clamped, rounded half up."""
from __future__ import annotations

import numpy as np


def to_uint8(x) -> np.ndarray:
    """An ndarray or a tensor (any shape, values in [0, 1]) -> uint8 ndarray of the same shape."""
    if hasattr(x, "detach"):                               # a torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
