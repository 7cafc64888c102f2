"""Kernel distance (KID/KVD; Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""
from __future__ import annotations

from typing import Optional

import numpy as np


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    if m < 2 or n < 2:
        raise ValueError("KVD needs at least 2 samples on each side")
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kernel_distance(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, Optional[float]]:
    """(mean, std) of the unbiased MMD^2 over ``subsets`` random subsets; with all samples in one
    subset there is a single estimate and the std is None (not 0: nothing was measured)."""
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(x), len(y))
    if size == len(x) == len(y) or subsets <= 1:
        return polynomial_mmd2_unbiased(x[:size], y[:size]), None
    values = [polynomial_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                                       y[rng.choice(len(y), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))
