"""One small Ray instance for all Ray and Serve tests (session scope), started by this test run only."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

RAY_TEST_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S": "180",
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
}


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    for k, v in RAY_TEST_ENV.items():
        os.environ.setdefault(k, v)
    import ray
    temp_dir = short_ray_tmpdir()
    # more logical CPUs than cores: 2 Train workers + Data tasks deadlock on 2 CPUs otherwise
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 2**20,
             _temp_dir=temp_dir, log_to_driver=True)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture()
def ray_tmpdir():
    """Factory of short RAY_TMPDIRs for Ray instances started by subprocesses; removed after the test."""
    made = []

    def make() -> str:
        made.append(short_ray_tmpdir())
        return made[-1]
    yield make
    for path in made:
        kill_ray_cluster(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    from tests.s3server import SeaweedS3
    server = SeaweedS3()
    yield server
    server.stop()


def short_ray_tmpdir() -> str:
    """A short RAY_TMPDIR: Ray's Unix-socket paths under pytest's long temp paths exceed 107 characters."""
    return tempfile.mkdtemp(prefix="lfdm-ray-", dir="/tmp")


def kill_ray_cluster(ray_tmpdir: str) -> int:
    """SIGKILL every process of the Ray instance started with RAY_TMPDIR=ray_tmpdir (driver, GCS, raylet,
    and the workers, which sit in process groups of their own). Returns how many were killed."""
    import psutil
    killed = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            mine = ray_tmpdir in " ".join(proc.info["cmdline"] or []) or \
                proc.environ().get("RAY_TMPDIR") == ray_tmpdir
            if mine and proc.pid != os.getpid():
                proc.kill()
                killed += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return killed
