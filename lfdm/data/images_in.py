"""Reading user images: any format Pillow decodes, letterboxed to the model's frame size."""
from __future__ import annotations

import io

import numpy as np
import torch

from lfdm.data.transforms import letterbox

ACCEPTED_FORMATS = "PNG, JPEG, BMP, GIF (first frame), WebP, TIFF"


class ImageError(ValueError):
    pass


def decode_image(data: bytes, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """bytes -> uint8 (H, W, 3); errors name the input and list accepted formats."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise ImageError(f"{name} has {img.width}x{img.height} pixels; at most {max_pixels} are accepted")
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name} is not a readable image ({ACCEPTED_FORMATS} are accepted): {exc}") from exc


def image_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, size, size) in [0, 1], aspect preserved (letterbox, area)."""
    return torch.from_numpy(letterbox(array[None], size)[0]).permute(2, 0, 1).contiguous()
