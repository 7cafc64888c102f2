"""Image grids for training samples and reports."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lfdm.io import storage
from lfdm.io.pixels import to_uint8


def image_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) in [0, 1] -> (H, W, 3) uint8."""
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return to_uint8(x.permute(1, 2, 0))


def grid(rows: Sequence[Sequence[torch.Tensor]], size: int) -> np.ndarray:
    """rows of (C, h, w) images, each resized (nearest) to size x size -> one uint8 image."""
    out = []
    for row in rows:
        cells = [image_uint8(F.interpolate(img[None].float(), size=(size, size), mode="nearest")[0]) for img in row]
        out.append(np.concatenate(cells, axis=1))
    return np.concatenate(out, axis=0)


def save_png(uri: str, image: np.ndarray) -> None:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    storage.write_bytes(uri, buf.getvalue())
