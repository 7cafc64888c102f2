"""The asynchronous jobs API on a real local Ray Serve over real HTTP: progress in order (as Server-Sent Events and
as status), result files, cancel frees the sampler, expiry, token scoping, bounded storage and queue."""
from __future__ import annotations

import io
import json
import os
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support import free_port, save_tiny_model

pytestmark = [pytest.mark.ray, pytest.mark.slow]
LABELS = ["move left", "zoom in", "stay still"]
TOKEN = "jobs-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDER = {"queued": 0, "running": 1, "encoding": 2, "done": 3, "failed": 3, "cancelled": 3}


def png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory):
    """"jobs": defaults; "slow": one generator call at a time; "short": finished jobs kept 2 s, 1 kB in all (only the newest fits),
    two active jobs at most."""
    from ray import serve
    from serve.app import TOKEN_ENV, build_app
    uri = save_tiny_model(str(tmp_path_factory.mktemp("jobs") / "model"), LABELS, {"sample.sampler": "ddim", "sample.steps": 10})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    small = {"ray_actor_options": {"num_cpus": 0.25}}
    limits = {"max_steps": 250, "max_frames": 16, "max_cost": 250 * 16}
    base = {"checkpoint": uri, "generator_options": small, "ingress_options": small}
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = TOKEN
    try:
        serve.run(build_app({**base, "limits": limits}), name="jobs", route_prefix="/")
        serve.run(build_app({**base, "max_batch_size": 1, "limits": limits,
                             "generator_options": {**small, "max_ongoing_requests": 1}}), name="slow",
                  route_prefix="/slow")
        serve.run(build_app({**base, "limits": {**limits, "job_ttl_s": 2, "job_max_bytes": 1000,
                                                  "job_max_active": 2}}), name="short", route_prefix="/short")
    finally:
        os.environ.pop(TOKEN_ENV) if previous is None else os.environ.__setitem__(TOKEN_ENV, previous)
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def create(url: str, prefix: str = "", **data) -> dict:
    r = httpx.post(f"{url}{prefix}/v1/jobs", headers=AUTH, timeout=60, files={"image": ("x.png", png())},
                   data={"label": "zoom in", **{k: str(v) for k, v in data.items()}})
    assert r.status_code == 202, r.text
    return r.json()


def events(url: str, prefix: str, job_id: str, timeout: float = 120):
    """Every Server-Sent Event of a job, parsed, until the stream ends."""
    out = []
    with httpx.stream("GET", f"{url}{prefix}/v1/jobs/{job_id}/events", headers=AUTH, timeout=timeout) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
    return out


def wait_status(url: str, prefix: str, job_id: str, statuses, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = httpx.get(f"{url}{prefix}/v1/jobs/{job_id}", headers=AUTH, timeout=30).json()
        if state["status"] in statuses:
            return state
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} never reached {statuses}")


def test_progress_arrives_in_order_and_the_files_are_served(server):
    job = create(server, steps=60, frames=8, seed=4)
    assert job["status"] == "queued" and len(job["id"]) >= 24 and job["links"]["events"].endswith("/events")
    stream = events(server, "", job["id"])
    kinds = [kind for kind, _ in stream]
    assert kinds[-1] == "done" and [ORDER[k] for k in kinds] == sorted(ORDER[k] for k in kinds)
    steps = [data["progress"]["step"] for kind, data in stream if kind == "running"]
    assert steps == sorted(steps) and len(steps) >= 2 and all(0 < s <= 60 for s in steps)   # step i of N, in order
    assert all(data["progress"]["total"] == 60 for kind, data in stream if kind == "running")
    done = stream[-1][1]
    assert done["progress"]["step"] == 60 and done["progress"]["phase"] == "done"
    assert set(done["files"]) == {"video.mp4", "video.gif", "video.npz", "flow.gif", "occlusion.gif"}
    mp4 = httpx.get(f"{server}/{done['links']['video.mp4']}", headers=AUTH, timeout=30)
    assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp" and mp4.headers["content-type"] == "video/mp4"
    arrays = np.load(io.BytesIO(httpx.get(f"{server}/v1/jobs/{job['id']}/video.npz", headers=AUTH, timeout=30).content))
    assert arrays["frames"].shape == (8, 32, 32, 3) and arrays["flows"].shape == (8, 8, 8, 2)
    for name in ("flow.gif", "occlusion.gif"):
        assert httpx.get(f"{server}/v1/jobs/{job['id']}/{name}", headers=AUTH, timeout=30).content[:6] == b"GIF89a"
    # the same request through the synchronous API gives the same video
    sync = httpx.post(f"{server}/v1/generate", headers=AUTH, timeout=60, files={"image": ("x.png", png())},
                      data={"label": "zoom in", "steps": "60", "frames": "8", "seed": "4", "format": "npz"})
    assert np.array_equal(np.load(io.BytesIO(sync.content))["frames"], arrays["frames"])


def test_cancel_stops_the_sampler_and_frees_it(server):
    slow = create(server, "/slow", steps=250, frames=16, seed=1)
    running = wait_status(server, "/slow", slow["id"], ("running",))
    waiting = create(server, "/slow", steps=10, frames=8, seed=2)             # queued behind the slow one
    r = httpx.delete(f"{server}/slow/v1/jobs/{slow['id']}", headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    cancelled_at = time.time()
    done = wait_status(server, "/slow", waiting["id"], ("done", "failed"), timeout=60)
    assert done["status"] == "done" and time.time() - cancelled_at < 20       # it did not wait for 250 steps
    final = httpx.get(f"{server}/slow/v1/jobs/{slow['id']}", headers=AUTH, timeout=30).json()
    assert final["status"] == "cancelled" and final["progress"]["step"] < 250 and running["progress"]["step"] < 250
    assert httpx.get(f"{server}/slow/v1/jobs/{slow['id']}/video.mp4", headers=AUTH, timeout=30).status_code == 409


def test_jobs_need_the_token_and_unknown_ids_are_404(server):
    job = create(server, steps=5, frames=4)
    for method, path in (("GET", ""), ("GET", "/events"), ("GET", "/video.mp4"), ("DELETE", "")):
        r = httpx.request(method, f"{server}/v1/jobs/{job['id']}{path}", timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (method, path)
    r = httpx.post(f"{server}/v1/jobs", timeout=30, files={"image": ("x.png", png())}, data={"label": "zoom in"})
    assert r.status_code == 401
    unknown = httpx.get(f"{server}/v1/jobs/{job['id'][:-2]}xx", headers=AUTH, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_job"
    bad = httpx.post(f"{server}/v1/jobs", headers=AUTH, timeout=30, files={"image": ("x.png", b"no image")},
                     data={"label": "zoom in"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_image"   # rejected before queueing


def test_finished_jobs_expire_storage_is_bounded_and_the_queue_too(server):
    first = create(server, "/short", steps=5, frames=16, seed=1)
    wait_status(server, "/short", first["id"], ("done",))
    second = create(server, "/short", steps=5, frames=16, seed=2)
    wait_status(server, "/short", second["id"], ("done",))
    # two finished jobs' files exceed 1 kB: the oldest went, the newest stays
    gone = httpx.get(f"{server}/short/v1/jobs/{first['id']}", headers=AUTH, timeout=30)
    assert gone.status_code == 404
    kept = httpx.get(f"{server}/short/v1/jobs/{second['id']}", headers=AUTH, timeout=30).json()
    assert kept["status"] == "done" and 0 < kept["expires_in_s"] <= 2
    time.sleep(2.5)
    assert httpx.get(f"{server}/short/v1/jobs/{second['id']}", headers=AUTH, timeout=30).status_code == 404
    # at most two jobs queued or running
    jobs = [create(server, "/short", steps=250, frames=16, seed=s) for s in (3, 4)]
    r = httpx.post(f"{server}/short/v1/jobs", headers=AUTH, timeout=30, files={"image": ("x.png", png())},
                   data={"label": "zoom in"})
    assert r.status_code == 503 and r.headers["retry-after"] == "2" and r.json()["error"]["code"] == "saturated"
    for job in jobs:
        httpx.delete(f"{server}/short/v1/jobs/{job['id']}", headers=AUTH, timeout=30)
