"""The one seed-derivation formula: a stable 63-bit integer from any sequence of parts.

A video's noise, a clip's frame choice and an evaluation clip choice all derive from
(run seed, stable key), never from a worker rank or a batch position.
"""
from __future__ import annotations

import contextlib
import hashlib

import numpy as np
import torch


def derive_seed(*parts) -> int:
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & ((1 << 63) - 1)


def numpy_rng(*parts) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


def torch_generator(*parts, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(*parts))
    return gen


@contextlib.contextmanager
def seeded(*parts):
    """Run a block with torch's global RNG seeded from ``parts`` (e.g. weight init), leaving it as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(*parts))
        yield
