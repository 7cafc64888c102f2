"""Autoscaling seen to happen, through the operator's deploy path: `serve run serve/serve_config.yaml --address`
against a Ray cluster on 127.0.0.1, the config's resources overridden for the tiny CPU model.

The generator scales up under a bounded load ramp (from Serve's controller: benchmarks/replica_watch.py) and back
down to its minimum after it, with no failed request but documented 503s, and identical videos for one seed
whichever replica served them; a second app with min_replicas 0 scales to zero and its first request after
idling is answered (the cold start is measured and printed).
"""
from __future__ import annotations

import concurrent.futures
import io
import json
import os
import signal
import subprocess
import time

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from benchmarks.serve_load import ReplicaWatcher, run_load
from tests.cluster import BIN, LocalCluster, free_ports
from tests.support import save_tiny_model

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "autoscaling-test-token"
LABELS = ["move left", "zoom in", "stay still"]


def test_replicas_scale_up_under_load_back_down_and_from_zero(tmp_path, ray_tmpdir):
    checkpoint = save_tiny_model(str(tmp_path / "model"), LABELS, {"sample.sampler": "ddim", "sample.steps": 20})
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(image)

    cluster = LocalCluster(ray_tmpdir(), head_cpus=4)
    port = free_ports(1, cluster.taken)[0]
    with open(os.path.join(ROOT, "serve", "serve_config.yaml")) as f:
        config = yaml.safe_load(f)
    config["http_options"]["port"] = port
    scaled = config["applications"][0]
    scaled["args"].update(checkpoint=checkpoint, max_batch_size=1, batch_wait_timeout_s=0.0)
    scaled["runtime_env"] = {"env_vars": {"LFDM_SERVE_TOKEN": TOKEN}}
    deployments = {d["name"]: d for d in scaled["deployments"]}
    deployments["generator"].update(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=4, max_queued_requests=64)
    deployments["generator"]["autoscaling_config"] = {
        "min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 1, "upscale_delay_s": 1,
        "downscale_delay_s": 4, "look_back_period_s": 2, "metrics_interval_s": 0.5}
    deployments["ingress"].update(ray_actor_options={"num_cpus": 0.25}, num_replicas=1)
    zero = json.loads(json.dumps(scaled))
    zero.update(name="zero", route_prefix="/zero")
    zero["deployments"][0]["autoscaling_config"] = {
        "min_replicas": 0, "max_replicas": 1, "initial_replicas": 1, "target_ongoing_requests": 1,
        "upscale_delay_s": 0, "downscale_delay_s": 2, "downscale_to_zero_delay_s": 3, "look_back_period_s": 2,
        "metrics_interval_s": 0.5}
    config["applications"] = [scaled, zero]
    (tmp_path / "serve_config.yaml").write_text(yaml.safe_dump(config))

    serve_run = watcher = zero_watcher = None
    try:
        serve_run = subprocess.Popen([os.path.join(BIN, "serve"), "run", str(tmp_path / "serve_config.yaml"),
                                      "--address", cluster.address], cwd=ROOT, env=cluster.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.time() + 240
        while True:
            assert serve_run.poll() is None and time.time() < deadline, "serve run did not come up"
            try:
                if all(httpx.get(f"{url}{p}/healthz", timeout=5).status_code == 200 for p in ("", "/zero")):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        watcher = ReplicaWatcher(cluster.address, "lfdm", env=cluster.env)
        zero_watcher = ReplicaWatcher(cluster.address, "zero", env=cluster.env)
        assert watcher.wait_for(lambda p: p["running"] == 1, 60) is not None

        # 1. a bounded ramp: 1, then 6 concurrent requests (each of them about a second of CPU)
        params = {"steps": "20", "sampler": "ddim", "format": "npz"}
        rows = run_load(url, str(image), "zoom in", concurrencies=[1, 6, 6], requests_per_level=24,
                        params=params, token=TOKEN, watcher=watcher)
        peak = max(r["replicas_max"] for r in rows)
        errors = {status: n for r in rows for status, n in r["errors_by_status"].items()}
        assert peak > 1, rows
        assert set(errors) <= {503}, errors                          # only the documented back-pressure answer

        # 2. while scaled up: one seed, the same video from whichever replica serves it
        same = {"label": "zoom in", "seed": "7", **params}
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{url}/v1/generate", headers=auth, timeout=300, data=same,
                                                        files={"image": ("x.png", image.read_bytes())}), range(12)))
        ok = [a for a in answers if a.status_code == 200]
        assert len(ok) >= 6 and all(a.status_code in (200, 503) for a in answers)
        videos = [np.load(io.BytesIO(a.content))["frames"] for a in ok]
        assert all(np.array_equal(v, videos[0]) for v in videos)
        served_by = {json.loads(a.headers["X-LFDM-Metadata"])["replica"] for a in ok}

        # 3. back to the minimum once the load stops
        down = watcher.wait_for(lambda p: p["running"] == 1 and p["states"].get("STARTING", 0) == 0, 120)
        assert down is not None, watcher.points[-5:]

        # 4. scale to zero, then a cold request is answered
        idle = zero_watcher.wait_for(lambda p: p["running"] == 0, 120)
        assert idle is not None, zero_watcher.points[-5:]
        start = time.time()
        cold = httpx.post(f"{url}/zero/v1/generate", headers=auth, timeout=300, data=same,
                          files={"image": ("x.png", image.read_bytes())})
        cold_start_s = time.time() - start
        assert cold.status_code == 200, cold.text[:300]
        warm_start = time.time()
        assert httpx.post(f"{url}/zero/v1/generate", headers=auth, timeout=300, data=same,
                          files={"image": ("x.png", image.read_bytes())}).status_code == 200
        warm_s = time.time() - warm_start
        timeline = [(round(p["t"], 1), p["running"]) for p in watcher.points]
        print(json.dumps({"rows": [{k: r[k] for k in ("concurrency", "ok", "errors", "p50_s", "replicas_min",
                                                       "replicas_max", "replicas_mean")} for r in rows],
                          "replicas_serving_one_seed": len(served_by), "scale_down_s": down,
                          "cold_start_s": round(cold_start_s, 2), "warm_request_s": round(warm_s, 2),
                          "timeline": timeline[::4]}))
    finally:
        for w in (watcher, zero_watcher):
            if w is not None:
                w.stop()
        if serve_run is not None:
            os.killpg(serve_run.pid, signal.SIGTERM)
            try:
                serve_run.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(serve_run.pid, signal.SIGKILL)
        cluster.stop()
