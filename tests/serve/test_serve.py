"""The Serve app on a real local Ray Serve (loopback) with the tiny model, over real HTTP."""
from __future__ import annotations

import base64
import io
import json
import socket

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.unet3d import UNet3D
from lfdm.presets import get_preset
from lfdm.pipelines.image_to_video import ImageToVideoPipeline

pytestmark = [pytest.mark.ray, pytest.mark.slow]
LABELS = ["move left", "zoom in", "stay still"]
TOKEN = "s3cret-token"


def png(w=40, h=30, seed=0, noise=True) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).random((h, w, 3)) if noise else np.full((h, w, 3), 0.5)
    Image.fromarray((pixels * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory):
    from ray import serve
    from serve.app import Generator, Ingress
    torch.manual_seed(0)
    cfg = get_preset("tiny", {"sample.sampler": "ddim", "sample.steps": 3})
    uri = str(tmp_path_factory.mktemp("serve") / "model")
    ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), LABELS,
                         torch.randn(3, 384)).save(uri)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    small = {"num_cpus": 0.25}
    limits = {"max_image_bytes": 200_000, "max_pixels": 300 * 300, "max_steps": 20, "max_frames": 16}
    serve.run(Ingress.options(ray_actor_options=small).bind(
        Generator.options(ray_actor_options=small).bind(uri, 4, 0.05), limits), name="main", route_prefix="/")
    serve.run(Ingress.options(ray_actor_options=small).bind(
        Generator.options(ray_actor_options=small, max_ongoing_requests=1, max_queued_requests=1).bind(uri, 1, 0.0),
        {**limits, "max_in_flight": 1}), name="tight", route_prefix="/tight")
    serve.run(Ingress.options(ray_actor_options={**small, "runtime_env": {"env_vars": {"LFDM_SERVE_TOKEN": TOKEN}}})
              .bind(Generator.options(ray_actor_options=small).bind(uri, 2, 0.01), limits),
              name="secure", route_prefix="/secure")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def post(url, path="/v1/generate", timeout=120, **kwargs):
    return httpx.post(url + path, timeout=timeout, **kwargs)


def test_health_labels_and_openapi(server):
    assert httpx.get(server + "/healthz", timeout=60).json()["status"] == "ok"
    info = httpx.get(server + "/v1/labels", timeout=60).json()
    assert info["labels"] == LABELS and info["defaults"]["frames"] == 10
    schema = httpx.get(server + "/openapi.json", timeout=60).json()
    content = schema["paths"]["/v1/generate"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}


@pytest.mark.parametrize("fmt", ["mp4", "gif", "npz", "json"])
def test_each_output_format(server, fmt):
    r = post(server, files={"image": ("x.png", png())}, data={"label": "zoom in", "format": fmt, "seed": "3"})
    assert r.status_code == 200, r.text
    if fmt == "json":
        body = r.json()
        meta, frames = body["metadata"], body["frames"]
        assert len(frames) == 10 and frames[0].startswith("data:image/png;base64,")
    else:
        meta = json.loads(r.headers["X-LFDM-Metadata"])
        if fmt == "mp4":
            assert r.headers["content-type"] == "video/mp4" and r.content[4:8] == b"ftyp"
        elif fmt == "gif":
            assert r.content[:6] == b"GIF89a"
        else:
            arrays = np.load(io.BytesIO(r.content))
            assert arrays["frames"].shape == (10, 32, 32, 3) and arrays["flows"].shape == (10, 8, 8, 2)
    assert meta["seed"] == 3 and meta["sampler"] == "ddim" and meta["steps"] == 3 and len(meta["checkpoint_hash"]) == 16
    assert meta["timing"]["total_seconds"] > 0


def test_base64_json_input_and_determinism_by_seed(server):
    body = {"image_base64": base64.b64encode(png(seed=1)).decode(), "label": "move left", "format": "npz", "seed": 7}
    a, b = post(server, json=body), post(server, json=body)
    c = post(server, json={**body, "seed": 8})
    assert a.status_code == b.status_code == c.status_code == 200
    fa, fb, fc = (np.load(io.BytesIO(r.content))["frames"] for r in (a, b, c))
    assert np.array_equal(fa, fb) and not np.array_equal(fa, fc)
    none = post(server, json={k: v for k, v in body.items() if k != "label"})          # stochastic generation
    assert none.status_code == 200 and json.loads(none.headers["X-LFDM-Metadata"])["label"] is None


@pytest.mark.parametrize("case,status,code", [
    ({"files": {"image": ("x.png", b"not an image at all")}, "data": {"label": "zoom in"}}, 422, "invalid_image"),
    ({"files": {"image": ("x.png", b"\x00" * 300_000)}, "data": {"label": "zoom in"}}, 413, "too_large"),
    ({"files": {"image": ("x.png", png(400, 400, noise=False))}, "data": {"label": "zoom in"}}, 413, "too_many_pixels"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "fly away"}}, 422, "unknown_label"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "steps": "0"}}, 422, "out_of_range"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "steps": "500"}}, 422, "out_of_range"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "sampler": "ddpm", "steps": "10"}}, 422, "out_of_range"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "guidance": "-1"}}, 422, "out_of_range"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "seed": "-5"}}, 422, "out_of_range"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "frames": "1000"}}, 422, "out_of_range"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "steps": "ten"}}, 422, "invalid_parameter"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "sampler": "euler"}}, 422, "invalid_parameter"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "format": "avi"}}, 422, "invalid_parameter"),
    ({"files": {"image": ("x.png", png())}, "data": {"label": "zoom in", "checkpoint": "/etc/passwd"}}, 422, "unknown_parameter"),
    ({"data": {"label": "zoom in"}, "files": {"other": ("x.png", png())}}, 422, "missing_image"),
    ({"content": b'{"image_base64": "abc", ', "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    ({"json": {"image_base64": "%%%notbase64%%%", "label": "zoom in"}}, 422, "invalid_image"),
    ({"content": b"raw bytes", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(server, case, status, code):
    r = post(server, **case)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "unknown_label":
        assert "move left" in error["message"]


def test_bearer_token(server):
    files, data = {"image": ("x.png", png())}, {"label": "zoom in", "format": "npz"}
    assert post(server, "/secure/v1/generate", files=files, data=data).status_code == 401
    assert post(server, "/secure/v1/generate", files=files, data=data,
                headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = post(server, "/secure/v1/generate", files=files, data=data, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert httpx.get(server + "/secure/healthz", timeout=60).status_code == 200       # liveness stays open


def test_saturation_returns_503_with_retry_after(server):
    import concurrent.futures
    def call(i):
        return post(server, "/tight/v1/generate", files={"image": ("x.png", png())},
                    data={"label": "zoom in", "steps": "20", "format": "npz", "seed": str(i)})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(call, range(8)))
    codes = [r.status_code for r in responses]
    assert 200 in codes and 503 in codes and set(codes) <= {200, 503}, codes
    rejected = [r for r in responses if r.status_code == 503]
    # rejected at once by the generator's bounded queue (max_queued_requests), told when to come back
    assert all(r.headers.get("retry-after") == "2" for r in rejected)


def test_bounded_concurrent_load_has_no_failures(server, tmp_path):
    from benchmarks.serve_load import run_load
    image = tmp_path / "x.png"
    image.write_bytes(png())
    rows = run_load(server, str(image), "zoom in", concurrencies=[1, 4], requests_per_level=8,
                    params={"steps": "3", "sampler": "ddim", "format": "mp4"})
    assert [r["errors"] for r in rows] == [0, 0] and all(r["ok"] == 8 for r in rows)
    assert rows[1]["p50_s"] > 0 and rows[1]["throughput_rps"] > 0
