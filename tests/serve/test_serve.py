"""The Serve app on a real local Ray Serve (loopback) with the tiny model, over real HTTP."""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support import free_port, save_tiny_model

pytestmark = [pytest.mark.ray, pytest.mark.slow]
LABELS = ["move left", "zoom in", "stay still"]
TOKEN = "s3cret-token"
KEEP_ALIVE_S = 2
BODY_TIMEOUT_S = 3.0


def png(w=40, h=30, seed=0, noise=True) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).random((h, w, 3)) if noise else np.full((h, w, 3), 0.5)
    Image.fromarray((pixels * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory):
    """Four apps through the one composition root (build_app): "main" (token on), "tight" (queues of one),
    "open" (auth explicitly off), "fuzz" (limits that keep any valid request cheap)."""
    from ray import serve
    from serve.app import TOKEN_ENV, build_app
    uri = save_tiny_model(str(tmp_path_factory.mktemp("serve") / "model"), LABELS, {"sample.sampler": "ddim", "sample.steps": 3})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port, "keep_alive_timeout_s": KEEP_ALIVE_S})
    small = {"ray_actor_options": {"num_cpus": 0.25}}
    limits = {"max_image_bytes": 200_000, "max_pixels": 300 * 300, "max_side": 1000, "max_steps": 20,
              "max_frames": 16, "max_cost": 20 * 16, "body_timeout_s": BODY_TIMEOUT_S}
    base = {"checkpoint": uri, "generator_options": small, "ingress_options": small}
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = TOKEN                      # build_app reads it where it runs: this process
    try:
        serve.run(build_app({**base, "max_batch_size": 4, "limits": limits}), name="main", route_prefix="/")
        serve.run(build_app({**base, "max_batch_size": 1, "batch_wait_timeout_s": 0.0,
                             "limits": {**limits, "max_in_flight": 1},
                             "generator_options": {**small, "max_ongoing_requests": 1, "max_queued_requests": 1}}),
                  name="tight", route_prefix="/tight")
        serve.run(build_app({**base, "auth": False, "limits": limits}), name="open", route_prefix="/open")
        serve.run(build_app({**base, "limits": {**limits, "max_steps": 2, "max_frames": 3, "max_cost": 6}}),
                  name="fuzz", route_prefix="/fuzz")
        no_encoder = save_tiny_model(str(tmp_path_factory.mktemp("serve") / "no_encoder"), LABELS,
                                     {"sample.sampler": "ddim", "sample.steps": 3, "text.encoder": "/no/such/encoder"})
        serve.run(build_app({**base, "checkpoint": no_encoder, "auth": False, "limits": limits}), name="labels_only",
                  route_prefix="/labels_only")
    finally:
        os.environ.pop(TOKEN_ENV) if previous is None else os.environ.__setitem__(TOKEN_ENV, previous)
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def post(url, path="/v1/generate", timeout=120, token=TOKEN, **kwargs):
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kwargs.pop("headers", {})}
    return httpx.post(url + path, timeout=timeout, headers=headers, **kwargs)


def assert_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"], error


def test_health_labels_and_openapi(server):
    assert httpx.get(server + "/healthz", timeout=60).json()["status"] == "ok"
    info = httpx.get(server + "/v1/labels", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert info["labels"] == LABELS and info["defaults"]["frames"] == 10
    assert info["defaults"]["prompt_projection"] is False and info["defaults"]["guidance_from"] == 0.0
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
    ({"files": {"image": ("x.png", png())}, "data": {"prompt": "   "}}, 422, "empty_prompt"),
    ({"json": {"image_base64": base64.b64encode(png()).decode(), "prompt": ""}}, 422, "empty_prompt"),
    ({"files": {"image": ("x.png", png())}, "data": {"prompt": "move " * 41}}, 422, "prompt_too_long"),
    ({"files": {"image": ("x.png", png())}, "data": {"prompt": "slide left", "label": "zoom in"}}, 422,
     "conflicting_parameters"),
    ({"data": {"label": "zoom in"}, "files": {"other": ("x.png", png())}}, 422, "missing_image"),
    ({"content": b'{"image_base64": "abc", ', "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    ({"json": {"image_base64": "%%%notbase64%%%", "label": "zoom in"}}, 422, "invalid_image"),
    ({"content": b"raw bytes", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(server, case, status, code):
    r = post(server, **case)
    assert_error(r, status, code)
    if code == "unknown_label":
        assert "move left" in r.json()["error"]["message"]


def test_free_text_prompts_and_a_model_that_cannot_read_them(server):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(server + "/v1/labels", timeout=60, headers=headers).json()["prompts"] == {
        "accepted": True, "reason": None}
    body = {"image_base64": base64.b64encode(png(seed=1)).decode(), "prompt": " slide it to the left ",
            "format": "npz", "seed": 7}
    a, b = post(server, json=body), post(server, json={**body, "prompt": "spin it clockwise"})
    assert a.status_code == b.status_code == 200, a.text
    meta = json.loads(a.headers["X-LFDM-Metadata"])
    assert meta["prompt"] == "slide it to the left" and meta["label"] is None
    assert not np.array_equal(*(np.load(io.BytesIO(r.content))["flows"] for r in (a, b)))
    schema = httpx.get(server + "/openapi.json", timeout=60).json()
    body_schema = schema["paths"]["/v1/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["properties"]["prompt"]["anyOf"][0]["maxLength"] == 200
    info = httpx.get(server + "/labels_only/v1/labels", timeout=60).json()
    assert not info["prompts"]["accepted"] and "/no/such/encoder" in info["prompts"]["reason"]
    assert_error(post(server, "/labels_only/v1/generate", json=body, token=None), 422, "prompts_unavailable")
    r = post(server, "/labels_only/v1/generate", json={**{k: v for k, v in body.items() if k != "prompt"},
                                                       "label": "zoom in"}, token=None)
    assert r.status_code == 200


def test_bearer_token_applies_to_everything_but_liveness(server):
    files, data = {"image": ("x.png", png())}, {"label": "zoom in", "format": "npz"}
    for token in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
        r = post(server, files=files, data=data, token=token)
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == 'Bearer realm="lfdm"'
    assert_error(httpx.get(server + "/v1/labels", timeout=60), 401, "unauthorized")
    assert post(server, files=files, data=data).status_code == 200
    assert post(server, files=files, data=data, token=None,
                headers={"Authorization": f"bearer   {TOKEN}"}).status_code == 200            # scheme case-insensitive
    assert httpx.get(server + "/healthz", timeout=60).status_code == 200                     # liveness stays open
    assert post(server, "/open/v1/generate", files=files, data=data, token=None).status_code == 200   # auth: false


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
                    params={"steps": "3", "sampler": "ddim", "format": "mp4"}, token=TOKEN)
    assert [r["errors"] for r in rows] == [0, 0] and all(r["ok"] == 8 for r in rows)
    assert rows[1]["p50_s"] > 0 and rows[1]["throughput_rps"] > 0


# ------------------------------------------------------------------ hostile clients, one or more cases per class
def png_bytes(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def broken_ihdr() -> bytes:
    data = bytearray(png_bytes(8, 8))
    data[8:12] = (0).to_bytes(4, "big")                  # IHDR chunk of length 0
    return bytes(data)


def png_chunks(*chunks) -> bytes:
    import struct
    import zlib
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF) for t, d in chunks)


IHDR = (b"IHDR", (16).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))


def other_format(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format=fmt)
    return buf.getvalue()


HOSTILE_IMAGES = {
    "png_zero_length_ihdr": broken_ihdr(),
    "png_broken_chunk": png_chunks(IHDR, (b"IDAT", b"\x78\x9c" + b"\xff" * 50), (b"IEND", b"")),
    "png_bad_crc": png_chunks(IHDR)[:-4] + b"\0\0\0\0",
    "png_truncated": png_bytes(64, 64)[:70],
    "ppm_bad_header": b"P6\n8 8\n70000\n" + b"\x00" * 10,
    "ppm": other_format("PPM"),
    "sgi": other_format("SGI"),
    "tga": other_format("TGA"),
    "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n",
    "qoi_magic": b"qoif" + b"\x00\x00\x00\x08" * 2 + b"\x03\x00" + b"\x00" * 20,
    "dds_magic": b"DDS " + b"\x7c\x00\x00\x00" + b"\x00" * 120,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_IMAGES))
def test_images_a_decoder_chokes_on_are_422(server, name):
    r = post(server, files={"image": ("x.img", HOSTILE_IMAGES[name])}, data={"label": "zoom in"})
    assert_error(r, 422, "invalid_image")


@pytest.mark.parametrize("body,status,code", [
    (b'{"image_base64": "aGk=", "steps": Infinity}', 400, "malformed_json"),
    (b'{"image_base64": "aGk=", "steps": NaN}', 400, "malformed_json"),
    (b'{"image_base64": "aGk=", "steps": 1e400}', 400, "malformed_json"),
    (b'{"image_base64": "aGk=", "seed": ' + b"9" * 5000 + b"}", 400, "malformed_json"),
    (b'{"image_base64": "aGk=", "seed": ' + b"9" * 4000 + b"}", 422, "out_of_range"),
    (b'{"image_base64": "aGk=", "format": ["mp4"]}', 422, "invalid_parameter"),
    (b'{"image_base64": "aGk=", "format": {"a": 1}}', 422, "invalid_parameter"),
    (b'{"image_base64": "aGk=", "steps": 2.5}', 422, "invalid_parameter"),
    (b'{"image_base64": "aGk=", "label": ["zoom in"]}', 422, "unknown_label"),
    (b'{"image_base64": "aGk=", "prompt": ["move up"]}', 422, "invalid_parameter"),
    (b'{"image_base64": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "malformed_json"),
    (b'{"x": ' * 20_000 + b"1" + b"}" * 20_000, 400, "malformed_json"),
    (b'[1, 2]', 400, "malformed_json"),
    (b'{"image_base64": 5}', 422, "missing_image"),
])
def test_json_bodies_that_overflow_or_nest_are_4xx(server, body, status, code):
    assert_error(post(server, content=body, headers={"content-type": "application/json"}), status, code)


def test_framework_errors_have_the_one_shape_and_media_types_are_case_insensitive(server):
    assert_error(httpx.get(server + "/nowhere", timeout=60), 404, "not_found")
    assert_error(httpx.get(server + "/v1/generate", timeout=60), 405, "method_not_allowed")
    bad_multipart = post(server, content=b"--xx\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n",
                         headers={"content-type": "multipart/form-data; boundary=yy"})
    assert bad_multipart.status_code in (400, 422) and "error" in bad_multipart.json()
    body = {"image_base64": base64.b64encode(png()).decode(), "label": "zoom in", "format": "npz"}
    r = post(server, content=json.dumps(body).encode(), headers={"content-type": "Application/JSON; charset=UTF-8"})
    assert r.status_code == 200, r.text


def test_openapi_declares_bounds_enums_media_types_and_the_error_shape(server):
    schema = httpx.get(server + "/openapi.json", timeout=60).json()
    op = schema["paths"]["/v1/generate"]["post"]
    props = op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert props["frames"]["maximum"] == 16 and props["frames"]["minimum"] == 2
    assert props["guidance"]["maximum"] == 20.0 and props["seed"]["minimum"] == 0
    assert set(props["format"]["enum"]) == {"mp4", "gif", "npz", "json"}
    assert set(props["sampler"]["enum"]) == {"ddpm", "ddim", "dpmpp"}
    assert "image" in op["requestBody"]["content"]["multipart/form-data"]["schema"]["required"]
    assert set(op["responses"]["200"]["content"]) == {"video/mp4", "image/gif", "application/octet-stream",
                                                      "application/json"}
    error = op["responses"]["422"]["content"]["application/json"]["schema"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


def test_cost_cap_and_ddpm_default_steps():
    from serve.schema import Limits, request_model, validate_params
    defaults = {"sampler": "ddim", "steps": 3, "guidance": 1.0, "frames": 10, "timesteps": 1000}
    limits = Limits(max_cost=1000 * 10)
    model = request_model(LABELS, defaults, limits)
    assert validate_params({"sampler": "ddpm"}, model, defaults, limits).steps == 1000      # ddpm: all steps
    with pytest.raises(Exception, match="costs 20000") as info:
        validate_params({"sampler": "ddpm", "guidance": 2.0}, model, defaults, limits)
    assert info.value.code == "too_costly" and info.value.status == 422


def test_frames_a_keyframe_model_cannot_cut_are_refused():
    from serve.schema import Limits, request_model, validate_params
    defaults = {"sampler": "ddim", "steps": 3, "guidance": 1.0, "frames": 16, "keyframe_stride": 5, "timesteps": 1000}
    limits = Limits()
    model = request_model(LABELS, defaults, limits)
    assert validate_params({"frames": 21}, model, defaults, limits).frames == 21
    with pytest.raises(Exception, match="frames=20: .*no keyframes at stride 5") as info:
        validate_params({"frames": 20}, model, defaults, limits)
    assert info.value.code == "out_of_range" and info.value.status == 422


def test_cost_cap_over_http(server):
    assert_error(post(server, files={"image": ("x.png", png())}, data={"label": "zoom in", "steps": "20",
                                                                        "frames": "16", "guidance": "2"}),
                 422, "too_costly")


# ------------------------------------------------------------------ bounded memory and time per request
def ingress_processes(app_name: str):
    import psutil
    return [p for p in psutil.process_iter(["cmdline"])
            if f"ServeReplica:{app_name}:ingress" in " ".join(p.info["cmdline"] or [])]


def test_amplification_inputs_keep_ingress_memory_bounded_and_healthz_answering(server):
    """A 1x1,000,000 PNG (3 KB), the largest accepted image, a thin accepted image and a 128 MiB chunked body:
    each is refused or handled without the ingress's RSS growing by more than 150 MB, while /healthz keeps
    answering within 2 s."""
    import threading
    procs = ingress_processes("main")
    assert procs, "no ingress replica process found"
    baseline = max(p.memory_info().rss for p in procs)
    peak, latencies, stop = [baseline], [], threading.Event()

    def watch():
        while not stop.is_set():
            peak.append(max(p.memory_info().rss for p in procs))
            t = time.time()
            httpx.get(server + "/healthz", timeout=10)
            latencies.append(time.time() - t)
            time.sleep(0.05)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert_error(post(server, files={"image": ("x.png", png_bytes(1_000_000, 1))}, data={"label": "zoom in"}),
                     413, "too_many_pixels")
        ok = post(server, files={"image": ("x.png", png_bytes(1000, 90))}, data={"label": "zoom in", "format": "npz"})
        assert ok.status_code == 200                                     # 1000 px wide: reduced before resizing
        ok = post(server, files={"image": ("x.png", png_bytes(300, 300))}, data={"label": "zoom in", "format": "npz"})
        assert ok.status_code == 200                                     # the largest accepted pixel count

        def chunks():
            block = b"0" * 2**20
            for _ in range(128):
                yield block
        assert_error(post(server, content=chunks(), headers={"content-type": "application/json"}), 413, "too_large")
    finally:
        stop.set()
        watcher.join()
    assert (max(peak) - baseline) / 2**20 < 150, (baseline / 2**20, max(peak) / 2**20)
    assert latencies and max(latencies) < 2.0, max(latencies)


def test_slow_body_gets_408_and_idle_keep_alive_is_closed(server):
    """A client trickling its body is answered 408 within the body timeout; an idle kept-alive connection is
    closed after the keep-alive timeout. (A client that never finishes its headers is not bounded by Ray Serve's
    HTTP server: see README, Serving.)"""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode())
        start = time.time()
        for _ in range(int(BODY_TIMEOUT_S) + 4):                     # one byte a second, bounded
            try:
                s.sendall(b" ")
            except OSError:
                break
            time.sleep(1)
        answer = s.recv(4096).decode(errors="replace")
        assert " 408 " in answer.splitlines()[0] and "body_timeout" in answer, answer[:300]
        assert time.time() - start < BODY_TIMEOUT_S + 5
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response:                           # the headers ...
            response += s.recv(4096)
        head, body = response.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(body) < length:                                     # ... and the whole body
            body += s.recv(4096)
        assert b" 200 " in head
        start = time.time()
        assert s.recv(4096) == b""                                    # then closed by the server when idle
        assert time.time() - start < KEEP_ALIVE_S + 3


# ------------------------------------------------------------------ property-based fuzzing against the real app
def test_fuzzed_requests_never_get_a_server_error(server):
    """Random parameters (known and unknown names, every JSON type, huge and non-finite numbers, long strings),
    random images (valid, truncated, random bytes) and both encodings: never a 5xx other than 503, and every
    error in the one shape. Bounded: 60 examples."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
                        st.sampled_from(["zoom in", "ddim", "dpmpp", "ddpm", "npz", "json", "1", "2", "0.5", ""]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                              inner, max_size=3),
                          max_leaves=6)
    keys = st.sampled_from(["label", "prompt", "sampler", "steps", "guidance", "seed", "frames", "format", "checkpoint",
                            "x"])
    images = st.one_of(st.just(png()), st.just(png()[:50]), st.binary(max_size=200), st.just(png_bytes(3, 400)))

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(params=st.dictionaries(keys, values, max_size=5), image=images, as_json=st.booleans())
    def check(params, image, as_json):
        if as_json:
            r = post(server, "/fuzz/v1/generate", json={"image_base64": base64.b64encode(image).decode(), **params})
        else:
            data = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()}
            r = post(server, "/fuzz/v1/generate", files={"image": ("x.png", image)}, data=data)
        assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300], params)
        if r.status_code >= 400:
            error = r.json()["error"]
            assert set(error) == {"code", "message"} and error["code"] and error["message"]
    check()
