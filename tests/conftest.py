"""Shared fixtures: small real data the project makes (never downloads)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """A small synthetic motion dataset on disk: 4 subjects (1 test), 1 video per class, 64x64, 24 frames."""
    from lfdm.data.synthetic import SyntheticSpec, write_synthetic_dataset
    root = tmp_path_factory.mktemp("synthetic")
    manifest = write_synthetic_dataset(str(root), SyntheticSpec(num_subjects=4, test_subjects=1,
                                                                 videos_per_class=1), progress=False)
    return root, manifest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The synthetic dataset at 32x32 for the `tiny` preset."""
    from lfdm.data.synthetic import SyntheticSpec, write_synthetic_dataset
    root = tmp_path_factory.mktemp("synthetic_tiny")
    manifest = write_synthetic_dataset(str(root), SyntheticSpec(num_subjects=3, test_subjects=1, videos_per_class=1,
                                                                 num_frames=12, image_size=32), progress=False)
    return root, manifest


from tests.ray_fixtures import ray_session, ray_tmpdir, s3_server  # noqa: E402,F401  (shared fixtures)
