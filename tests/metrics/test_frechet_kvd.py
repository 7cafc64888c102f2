import math

import numpy as np
import pytest

from lfdm.metrics.frechet import GaussianStats, frechet_distance, frechet_distance_of, frechet_distance_of_samples
from lfdm.metrics.fvd import FVDProtocol, bootstrap_fvd, grouped_fvd
from lfdm.metrics.kvd import kernel_distance, polynomial_mmd2_unbiased


def test_frechet_distance_closed_form():
    fd = frechet_distance(np.zeros(2), np.array([[2.0, 1.0], [1.0, 2.0]]), np.ones(2), np.diag([1.0, 4.0]))
    assert fd == pytest.approx(11 - 2 * math.sqrt(10 + 4 * math.sqrt(3)), abs=1e-12)
    s = np.array([[3.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.ones(2), s, np.ones(2), s) == pytest.approx(0.0, abs=1e-10)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(9 + 1)


def test_merged_shard_statistics_equal_whole_set():
    x = np.random.default_rng(0).normal(size=(1000, 16)) * 3 + 1
    whole = GaussianStats.of(x)
    merged = GaussianStats.of(x[:123]).merge(GaussianStats.of(x[123:700])).merge(GaussianStats.of(x[700:]))
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.covariance(), np.cov(x, rowvar=False, ddof=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.covariance(), whole.covariance(), rtol=1e-12)
    y = np.random.default_rng(1).normal(size=(500, 16))
    assert frechet_distance_of(merged, GaussianStats.of(y)) == pytest.approx(
        frechet_distance_of(whole, GaussianStats.of(y)), rel=1e-10)


@pytest.mark.parametrize("n1, n2, ddof", [(54, 72, 1), (30, 45, 1), (72, 72, 0), (3, 2, 1)])
def test_frechet_distance_of_samples_equals_the_covariance_route_below_the_dimension(n1, n2, ddof):
    rng = np.random.default_rng(n1)
    d = 400                                       # I3D's feature size: more dimensions than samples
    x1 = rng.normal(size=(n1, d)) * rng.uniform(0.5, 2, d) + 1
    x2 = rng.normal(size=(n2, d)) @ rng.normal(size=(d, d)) / 20
    expected = frechet_distance_of(GaussianStats.of(x1), GaussianStats.of(x2), ddof)
    # the covariance route takes the root of ~d - n eigenvalues that are zero up to rounding: ~1e-8 off
    assert frechet_distance_of_samples(x1, x2, ddof) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance_of_samples(x1, x1, ddof) == pytest.approx(0.0, abs=1e-9 * expected)


def test_frechet_distance_of_samples_closed_form_below_the_dimension():
    # x2 = c x1 + shift: S2 = c^2 S1 and mu2 = c mu1 + shift, so FD = |(c - 1) mu1 + shift|^2 + (1 - c)^2 tr(S1),
    # with rank(S1) = 39 of 400 dimensions
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=(40, 400)) * rng.uniform(0.5, 2, 400)
    shift, c = rng.normal(size=400), 2.5
    exact = (((c - 1) * x1.mean(0) + shift) ** 2).sum() + (1 - c) ** 2 * np.cov(x1, rowvar=False).trace()
    assert frechet_distance_of_samples(x1, c * x1 + shift) == pytest.approx(exact, rel=1e-12)


def test_frechet_distance_of_samples_above_the_dimension_and_bad_input():
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(500, 8)), rng.normal(size=(300, 8)) + 0.3
    assert frechet_distance_of_samples(x1, x2) == frechet_distance_of(GaussianStats.of(x1), GaussianStats.of(x2))
    with pytest.raises(ValueError, match="more than 1 samples"):
        frechet_distance_of_samples(x1[:1], x2[:5])
    with pytest.raises(ValueError, match="one d"):
        frechet_distance_of_samples(x1, x2[:, :4])


def test_kvd_unbiased_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = polynomial_mmd2_unbiased(a, b)
    assert abs(same) < 0.05
    assert polynomial_mmd2_unbiased(a, b + 1.0) > 10 * abs(same)
    mean, std = kernel_distance(a, b + 1.0, subsets=10, subset_size=100, seed=5)
    rng = np.random.default_rng(5)                                   # the same subsets, drawn by hand
    values = [polynomial_mmd2_unbiased(a[rng.choice(400, 100, replace=False)], (b + 1.0)[rng.choice(400, 100, replace=False)])
              for _ in range(10)]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values)) and std > 0
    full = polynomial_mmd2_unbiased(a, b + 1.0)                      # the subset mean estimates the same MMD
    assert abs(mean - full) < 3 * std / np.sqrt(10)
    assert kernel_distance(a, b, subsets=10, subset_size=1000) == (polynomial_mmd2_unbiased(a, b), None)


def test_grouped_fvd_reports_sizes_and_flags_small_groups():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(90, 4)) + 0.5
    out = grouped_fvd(real, ["a"] * 30 + ["b"] * 30, fake, ["a"] * 45 + ["b"] * 44 + ["c"], bootstrap=5)
    assert out["groups"]["a"]["n_real"] == 30 and out["groups"]["a"]["n_gen"] == 45
    assert out["small_groups"] == ["a", "b"] and out["unmatched_groups"] == ["c"]
    assert out["mean"] == pytest.approx(np.mean([out["groups"][g]["fvd"] for g in "ab"]))
    lo, hi = out["groups"]["a"]["interval"]
    boot = np.random.default_rng(0)                                  # grouped_fvd's resamples, drawn by hand
    r, f = real[:30], fake[:45]
    values = [frechet_distance_of(GaussianStats.of(r[boot.integers(0, 30, 30)]), GaussianStats.of(f[boot.integers(0, 45, 45)]))
              for _ in range(5)]
    assert (lo, hi) == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)))
    assert lo < hi
    assert bootstrap_fvd(real, fake, 0) is None


def test_protocol_hash_changes_with_any_field():
    a = FVDProtocol(num_frames=16, weights="w")
    assert a.digest() == FVDProtocol(num_frames=16, weights="w").digest()
    assert a.digest() != FVDProtocol(num_frames=40, weights="w").digest()
    assert a.digest() != FVDProtocol(num_frames=16, weights="w", ddof=0).digest()
