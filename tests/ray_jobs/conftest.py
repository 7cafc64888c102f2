"""Ray fixtures live in tests/ray_fixtures.py (shared with the Serve tests)."""
from tests.ray_fixtures import RAY_TEST_ENV, kill_ray_cluster, short_ray_tmpdir  # noqa: F401
