"""The one device choice: what the user asked for, else the GPU when there is one (and it is wanted), else CPU."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch


def pick_device(requested: Optional[str] = None, *, use_gpu: bool = True) -> torch.device:
    """``requested`` ("cpu", "cuda", "cuda:1") wins; a CUDA request on a machine without CUDA is an error."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was requested but this machine has no CUDA device")
        return device
    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")


def bf16_autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA or CPU when ``enabled`` (weights, warps and sampler arithmetic stay fp32)."""
    if enabled and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
