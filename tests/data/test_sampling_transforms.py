import numpy as np
import pytest
import torch

from lfdm.config import DataConfig
from lfdm.data.datasets import ClipDataset, FramePairDataset
from lfdm.data.sampling import clip_indices, pair_indices
from lfdm.data.transforms import JitterFactors, area_matrix, color_jitter, letterbox


def test_uniform_matches_official_linspace():
    np.testing.assert_array_equal(clip_indices(100, 40, "uniform"),
                                  np.linspace(0, 99, 40, dtype=int))
    np.testing.assert_array_equal(clip_indices(5, 8, "uniform"), [0, 1, 2, 3, 4, 4, 4, 4])


def test_random_stays_within_neighbour_steps():
    rng = np.random.default_rng(0)
    base = np.linspace(0, 79, 40, dtype=int)
    for _ in range(50):
        idx = clip_indices(80, 40, "random", rng)
        assert idx[0] == 0 and idx[-1] == 79 and np.all(np.diff(idx) >= 0)
        assert np.all(np.abs(idx - base) <= 2)
    assert not np.array_equal(clip_indices(80, 40, "random", np.random.default_rng(1)), base)
    np.testing.assert_array_equal(clip_indices(5, 8, "random", rng), [0, 1, 2, 3, 4, 4, 4, 4])


def test_very_random_forces_frame_zero_and_sorts():
    rng = np.random.default_rng(0)
    for n in (5, 60):
        idx = clip_indices(n, 40, "very_random", rng)
        assert idx[0] == 0 and np.all(np.diff(idx) >= 0) and idx.max() < n


def test_sampling_errors():
    with pytest.raises(ValueError, match="unknown clip sampling"):
        clip_indices(10, 4, "fancy")
    with pytest.raises(ValueError, match="random generator"):
        clip_indices(10, 4, "random")
    pair = pair_indices(10, np.random.default_rng(0))
    np.testing.assert_array_equal(pair, np.sort(np.random.default_rng(0).choice(10, size=2, replace=True)))
    with pytest.raises(ValueError, match="empty video"):
        pair_indices(0, np.random.default_rng(0))


def test_pairs_are_two_independent_uniform_draws_that_may_coincide():
    rng = np.random.default_rng(1)
    pairs = np.stack([pair_indices(10, rng) for _ in range(4000)])
    assert np.all(pairs[:, 0] <= pairs[:, 1])
    assert abs(np.mean(pairs[:, 0] == pairs[:, 1]) - 0.1) < 0.02               # P(same frame) = 1/10
    counts = np.bincount(pairs.ravel(), minlength=10) / pairs.size              # each frame 1/10 of the draws
    np.testing.assert_allclose(counts, 0.1, atol=0.015)


def test_letterbox_preserves_aspect_and_pads_symmetrically():
    frames = np.full((1, 480, 336, 3), 200, np.uint8)
    out = letterbox(frames, 128)
    assert out.shape == (1, 128, 128, 3)
    # 336 * 128/480 = 89.6 -> 89 columns of content, 39 of padding split 19 | 20
    cols = out[0, 64, :, 0]
    assert np.all(cols[:19] == 0) and np.all(cols[-20:] == 0)
    np.testing.assert_allclose(cols[19:108], 200 / 255, atol=1e-5)


def test_area_matrix_is_an_exact_box_filter():
    m = area_matrix(6, 3)
    np.testing.assert_allclose(m, np.kron(np.eye(3), [[0.5, 0.5]]))
    assert np.allclose(area_matrix(7, 3).sum(1), 1)


def test_color_jitter_identity_and_brightness():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(color_jitter(x, JitterFactors()), x)
    torch.testing.assert_close(color_jitter(x, JitterFactors(brightness=0.5)), x * 0.5)
    y = color_jitter(x, JitterFactors(hue=0.3))
    torch.testing.assert_close(color_jitter(y, JitterFactors(hue=-0.3)), x, atol=1e-4, rtol=0)


def test_datasets_are_deterministic_under_a_seed(synthetic_dataset):
    _, manifest = synthetic_dataset
    cfg = DataConfig(image_size=32, num_frames=8, pair_jitter=0.1)
    a = FramePairDataset(manifest.records, cfg, seed=3)
    b = FramePairDataset(manifest.records, cfg, seed=3)
    c = FramePairDataset(manifest.records, cfg, seed=4)
    assert torch.equal(a[5]["driving"], b[5]["driving"]) and torch.equal(a[5]["source"], b[5]["source"])
    assert any(not torch.equal(a[i]["driving"], c[i]["driving"]) for i in range(6))
    clips = ClipDataset(manifest.records, cfg, sampling="random", color_jitter=True, seed=1)
    item = clips[2]
    assert item["video"].shape == (3, 8, 32, 32) and item["frame_indices"][0] == 0
    assert torch.equal(item["video"], ClipDataset(manifest.records, cfg, sampling="random",
                                                  color_jitter=True, seed=1)[2]["video"])
    revisit = clips[2 + len(manifest.records)]          # same video, another visit: fresh randomness
    assert not torch.equal(revisit["frame_indices"], item["frame_indices"]) or \
        not torch.equal(revisit["video"], item["video"])
