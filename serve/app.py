"""The Serve application: ``build_app({"checkpoint": URI, ...})`` (import path ``serve.app:build_app``).

POST /v1/generate   image (multipart upload or base64 JSON) + label -> video + metadata
GET  /v1/labels     the labels this model accepts, and the defaults
GET  /healthz       liveness of the ingress and the generator
The checkpoint is fixed by the deployment's config: nothing a client sends names a file or a model.
"""

import asyncio
import base64
import io
import json
import os
import time
from collections import defaultdict
from dataclasses import asdict
from typing import Any, Dict, List, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.serve.exceptions import BackPressureError

from lfdm.diffusion.samplers import SAMPLERS
from serve.schema import FORMATS, ApiError, Limits, validate_params

TOKEN_ENV = "LFDM_SERVE_TOKEN"
RETRY_AFTER_S = 2   # saturation: the 503 of Serve's back-pressure (max_queued_requests) carries Retry-After


@serve.deployment(name="generator", max_ongoing_requests=16, max_queued_requests=32, health_check_period_s=10,
                  backpressure_config={"status_code": 503, "retry_after_s": RETRY_AFTER_S})
class Generator:
    """Holds the pipeline on its device; compatible requests (same sampler, steps, guidance, frames) of a
    batch run as one pipeline call. Per-request seeds keep every video independent of its batch."""

    def __init__(self, checkpoint: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.05):
        from lfdm.device import pick_device
        from lfdm.pipelines.image_to_video import ImageToVideoPipeline
        self.device = str(pick_device())
        self.pipe = ImageToVideoPipeline.load(checkpoint, device=self.device)
        self.checkpoint_hash = self.pipe.checkpoint_hash
        self.generate.set_max_batch_size(max_batch_size)
        self.generate.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> Dict[str, Any]:
        cfg = self.pipe.config
        return {"labels": self.pipe.labels, "checkpoint_hash": self.checkpoint_hash, "image_size": cfg.data.image_size,
                "defaults": {"sampler": cfg.sample.sampler, "steps": cfg.sample.steps, "guidance": cfg.sample.guidance,
                             "frames": cfg.data.num_frames, "timesteps": cfg.diffusion.timesteps},
                "device": self.device}

    def check_health(self) -> None:
        if self.pipe is None:
            raise RuntimeError("pipeline not loaded")

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def generate(self, requests: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return await asyncio.to_thread(self._run, requests)

    def _run(self, requests: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        import torch
        from lfdm.io.outputs import frames_uint8
        groups = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r["sampler"], r["steps"], r["guidance"], r["frames"])].append(i)
        results: List[Dict[str, Any]] = [{} for _ in requests]
        for (sampler, steps, guidance, frames), idx in groups.items():
            start = time.time()
            images = torch.stack([torch.tensor(requests[i]["image"]) for i in idx])   # object-store arrays are read-only
            out = self.pipe(images, [requests[i]["label"] for i in idx], seeds=[requests[i]["seed"] for i in idx],
                            sampler=sampler, steps=steps, guidance=guidance, num_frames=frames)
            seconds = time.time() - start
            for j, i in enumerate(idx):
                results[i] = {"frames": frames_uint8(out.frames[j]), "flows": out.flows[j].cpu().numpy(),
                              "occlusions": out.occlusions[j, 0].cpu().numpy(), "generate_seconds": seconds,
                              "batch_size": len(idx)}
        return results


app = FastAPI(title="LFDM image-to-video sampler", version="1", description=__doc__)

GENERATE_OPENAPI = {
    "requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary", "description": "PNG/JPEG/... source frame"},
            "label": {"type": "string", "description": "one of GET /v1/labels; omit for stochastic generation"},
            "sampler": {"type": "string", "enum": list(SAMPLERS)},
            "steps": {"type": "integer", "minimum": 1}, "guidance": {"type": "number", "minimum": 0},
            "seed": {"type": "integer", "minimum": 0}, "frames": {"type": "integer", "minimum": 2},
            "format": {"type": "string", "enum": list(FORMATS)}}}},
        "application/json": {"schema": {"type": "object", "required": ["image_base64"], "properties": {
            "image_base64": {"type": "string", "description": "base64 of the image file's bytes"},
            "label": {"type": "string"}, "sampler": {"type": "string", "enum": list(SAMPLERS)},
            "steps": {"type": "integer"}, "guidance": {"type": "number"}, "seed": {"type": "integer"},
            "frames": {"type": "integer"}, "format": {"type": "string", "enum": list(FORMATS)}}}}}},
    "responses": {
        "200": {"description": "the video (mp4/gif/npz body with an X-LFDM-Metadata JSON header), or JSON "
                               "{metadata, frames: [PNG data URLs]} for format=json"},
        "4XX": {"description": 'a JSON error {"error": {"code", "message"}} naming the problem'},
        "503": {"description": "saturated: retry after the Retry-After header's seconds"}},
}


def _saturated() -> JSONResponse:
    return JSONResponse({"error": {"code": "saturated", "message": "the sampler is saturated; retry later"}},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)


@serve.deployment(name="ingress", max_ongoing_requests=64, max_queued_requests=128,
                  backpressure_config={"status_code": 503, "retry_after_s": RETRY_AFTER_S})
@serve.ingress(app)
class Ingress:
    def __init__(self, generator, limits: Optional[Dict[str, Any]] = None):
        self.generator = generator
        self.limits = Limits(**(limits or {}))
        self.token = os.environ.get(TOKEN_ENV) or None
        self._info = None
        self.in_flight = 0

    async def info(self) -> Dict[str, Any]:
        if self._info is None:
            self._info = await self.generator.info.remote()
        return self._info

    def _authorise(self, request: Request) -> None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")

    @app.get("/healthz")
    async def healthz(self):
        info = await self.info()
        return {"status": "ok", "checkpoint_hash": info["checkpoint_hash"], "device": info["device"]}

    @app.get("/v1/labels")
    async def labels(self, request: Request):
        try:
            self._authorise(request)
        except ApiError as exc:
            return _error(exc)
        info = await self.info()
        return {"labels": info["labels"], "defaults": info["defaults"], "limits": asdict(self.limits)}

    @app.post("/v1/generate", openapi_extra=GENERATE_OPENAPI)
    async def generate(self, request: Request):
        start = time.time()
        try:
            self._authorise(request)
            info = await self.info()
            image_bytes, raw = await self._read(request)
            params = validate_params(raw, labels=info["labels"], defaults=info["defaults"], limits=self.limits)
            image = self._image(image_bytes, info["image_size"])
        except ApiError as exc:
            return _error(exc)
        if self.in_flight >= self.limits.max_in_flight:
            return _saturated()
        self.in_flight += 1
        try:
            result = await self.generator.generate.remote({"image": image, "label": params.label, "seed": params.seed,
                                                           "sampler": params.sampler, "steps": params.steps,
                                                           "guidance": params.guidance, "frames": params.frames})
        except BackPressureError:
            return _saturated()
        finally:
            self.in_flight -= 1
        encode_start = time.time()
        metadata = {"label": params.label, "seed": params.seed, "sampler": params.sampler, "steps": params.steps,
                    "guidance": params.guidance, "frames": params.frames, "format": params.format,
                    "checkpoint_hash": info["checkpoint_hash"], "batch_size": result["batch_size"]}
        body, media = self._encode(result, params.format, metadata)
        metadata["timing"] = {"generate_seconds": round(result["generate_seconds"], 4),
                              "encode_seconds": round(time.time() - encode_start, 4),
                              "total_seconds": round(time.time() - start, 4)}
        if params.format == "json":
            return JSONResponse({"metadata": metadata, "frames": body})
        return Response(content=body, media_type=media, headers={"X-LFDM-Metadata": json.dumps(metadata)})

    async def _read(self, request: Request):
        if int(request.headers.get("content-length") or 0) > self.limits.max_image_bytes + 2**16:
            raise ApiError(413, "too_large", f"request body over {self.limits.max_image_bytes} bytes")
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "missing_image", "multipart field 'image' (a file) is required")
            data = await upload.read(self.limits.max_image_bytes + 1)
            return data, {k: v for k, v in form.items() if k != "image"}
        if ctype.startswith("application/json"):
            try:
                raw = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise ApiError(400, "malformed_json", "the JSON body must be an object")
            encoded = raw.get("image_base64")
            if not isinstance(encoded, str):
                raise ApiError(422, "missing_image", "JSON field 'image_base64' (a base64 string) is required")
            try:
                data = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise ApiError(422, "invalid_image", "image_base64 is not valid base64") from None
            return data, {k: v for k, v in raw.items() if k != "image_base64"}
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")

    def _image(self, data: bytes, size: int) -> np.ndarray:
        from lfdm.data.images_in import ImageError, decode_image, image_tensor
        if len(data) > self.limits.max_image_bytes:
            raise ApiError(413, "too_large", f"image over {self.limits.max_image_bytes} bytes")
        try:
            array = decode_image(data, "image", max_pixels=self.limits.max_pixels)
        except ImageError as exc:
            status, code = (413, "too_many_pixels") if "pixels" in str(exc) else (422, "invalid_image")
            raise ApiError(status, code, str(exc)) from None
        return image_tensor(array, size).numpy()

    def _encode(self, result: Dict[str, Any], fmt: str, metadata: Dict[str, Any]):
        from lfdm.io.outputs import encode
        frames = result["frames"]
        if fmt in ("mp4", "gif"):
            return encode(frames, fmt, fps=10.0), FORMATS[fmt]
        if fmt == "npz":
            from lfdm.io.outputs import npz_bytes
            return npz_bytes(frames, result["flows"], result["occlusions"], metadata), FORMATS[fmt]
        from PIL import Image
        urls = []
        for frame in frames:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="PNG")
            urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
        return urls, FORMATS[fmt]


def build_app(args: Dict[str, Any]):
    """Application builder for ``serve run`` / ``serve deploy``: the checkpoint URI is the only required arg."""
    if not args.get("checkpoint"):
        raise ValueError("the Serve app needs args.checkpoint (a local path or s3:// URI of a full model)")
    generator = Generator.bind(args["checkpoint"], int(args.get("max_batch_size", 8)),
                               float(args.get("batch_wait_timeout_s", 0.05)))
    return Ingress.bind(generator, args.get("limits"))
