"""Reading user images (the CLI and the HTTP API): only the formats listed, bounded before decoding,
letterboxed to the model's frame size.

Untrusted bytes: the format is one of ACCEPTED_FORMATS (Pillow's other plugins, EPS among them, which would
hand the file to Ghostscript, are never tried); each side and the pixel count are checked from the header,
before any pixel is decoded; whatever a decoder raises on a corrupt file becomes an ImageError naming the input.
"""
from __future__ import annotations

import io
from typing import Optional

import numpy as np
import torch

from lfdm.data.transforms import letterbox

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")      # GIF: its first frame


class ImageError(ValueError):
    """An image that cannot be used; ``too_large`` when it is over a size limit rather than unreadable."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


def decode_image(data: bytes, name: str = "image", max_pixels: Optional[int] = None,
                 max_side: Optional[int] = None, reduce_to: Optional[int] = None) -> np.ndarray:
    """bytes -> uint8 (H, W, 3). ``reduce_to``: images more than twice that size are first box-averaged by an
    integer factor (Pillow's reduce), so later resizing never works on more than ~4x the target's pixels."""
    from PIL import Image
    try:
        img = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Exception as exc:              # UnidentifiedImageError, or whatever a header parser raises
        raise ImageError(f"{name} is not a readable image ({', '.join(ACCEPTED_FORMATS)} are accepted): "
                         f"{type(exc).__name__}: {str(exc)[:200]}") from None
    with img:
        w, h = img.size
        if w < 1 or h < 1:
            raise ImageError(f"{name} has no pixels ({w}x{h})")
        if max_side is not None and max(w, h) > max_side:
            raise ImageError(f"{name} is {w}x{h} pixels; each side may be at most {max_side}", too_large=True)
        if max_pixels is not None and w * h > max_pixels:
            raise ImageError(f"{name} has {w}x{h} pixels; at most {max_pixels} are accepted", too_large=True)
        try:
            img.load()
            if reduce_to and max(w, h) >= 4 * reduce_to:
                img = img.reduce(max(w, h) // (2 * reduce_to))
            return np.asarray(img.convert("RGB"))
        except Exception as exc:          # truncated or corrupt data: OSError, ValueError, SyntaxError, ...
            raise ImageError(f"{name} is not a readable image ({', '.join(ACCEPTED_FORMATS)} are accepted): "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None


def image_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, size, size) in [0, 1], aspect preserved (letterbox, area)."""
    return torch.from_numpy(letterbox(array[None], size)[0]).permute(2, 0, 1).contiguous()
