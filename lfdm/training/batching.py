"""Which samples make the global batch of step s: a pure function of (seed, step).

The sample stream is an endless sequence of seeded permutations of the N videos; the global batch
of step s is stream positions [s*B, (s+1)*B). Each position p maps to the virtual index
(p // N) * N + perm_(p // N)[p % N]; datasets read video (v mod N) with randomness seeded by v.
Consequences: a resumed run sees exactly the batches an uninterrupted one would, and a data-parallel
worker r of W takes positions r, r+W, ... of the same global batch, whatever W is.
"""
from __future__ import annotations

from typing import Iterator, List

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lfdm.io.seeding import numpy_rng


def _epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return numpy_rng(seed, "permutation", epoch).permutation(n)


def global_batch(step: int, batch_size: int, n: int, seed: int) -> np.ndarray:
    """Virtual sample indices of the global batch of ``step`` (length batch_size)."""
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    out = np.empty(batch_size, np.int64)
    for epoch in np.unique(positions // n):
        sel = positions // n == epoch
        out[sel] = epoch * n + _epoch_permutation(seed, int(epoch), n)[positions[sel] % n]
    return out


class StepBatchSampler(Sampler[List[int]]):
    """Yields this worker's share of each global batch for steps [start_step, end_step)."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, end_step: int,
                 rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} does not split over {world_size} workers")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.end_step = start_step, end_step
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[List[int]]:
        for step in range(self.start_step, self.end_step):
            yield global_batch(step, self.batch_size, self.n, self.seed)[self.rank::self.world_size].tolist()


def step_batches(dataset: Dataset, num_videos: int, batch_size: int, seed: int, start_step: int,
                 end_step: int, *, rank: int = 0, world_size: int = 1, num_workers: int = 0) -> DataLoader:
    sampler = StepBatchSampler(num_videos, batch_size, seed, start_step, end_step, rank, world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())
