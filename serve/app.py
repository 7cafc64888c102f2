"""The Serve application. ``build_app(args)`` (import path ``serve.app:build_app``) is its one composition
root: serve_config.yaml, ``lfdm serve`` (embedded or ``--address``) and the tests all start it through it.

POST /v1/generate            image (multipart upload or base64 JSON) + label or prompt -> video + metadata (synchronous)
POST /v1/jobs                the same parameters -> a job id at once (202); the video is made in the background
GET  /v1/jobs/{id}           status, progress (sampler step i of N, then decoding, encoding), result files
GET  /v1/jobs/{id}/events    the same as Server-Sent Events, until the job ends
GET  /v1/jobs/{id}/{file}    video.mp4, video.gif, video.npz, flow.gif, occlusion.gif of a finished job
DELETE /v1/jobs/{id}         cancel: the sampler stops at its next step and frees its batch slot
GET  /v1/labels              the labels this model accepts, whether it reads prompts, the defaults and the limits
GET  /                       a web page for all of it (one static file, nothing loaded from elsewhere)
GET  /healthz                liveness of the ingress and the generator (no token needed)
The checkpoint is fixed by the deployment's config: nothing a client sends names a file or a model.
Authentication is on unless the operator turns it off (``args.auth: false``): a bearer token whose SHA-256
the ingress keeps (never the token itself), compared in constant time.
"""

import asyncio
import base64
import hashlib
import hmac
import io
import json
import os
import time
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from typing import Any, Dict, List, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.generator import RETRY_AFTER_S, Generator
from serve.jobs import TERMINAL, JobBoard
from serve.schema import FORMATS, ApiError, Limits, parse_json_object, request_model, validate_params

TOKEN_ENV = "LFDM_SERVE_TOKEN"
REALM = 'Bearer realm="lfdm"'
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page", "index.html")
def sse(kind: str, data: Dict[str, Any]) -> str:
    """One Server-Sent Event."""
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


JOB_FILES = {"video.mp4": "video/mp4", "video.gif": "image/gif", "video.npz": "application/octet-stream",
             "flow.gif": "image/gif", "occlusion.gif": "image/gif"}


app = FastAPI(title="LFDM image-to-video sampler", version="1", description=__doc__)


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status,
                        headers=exc.headers)


def saturated(what: str) -> ApiError:
    return ApiError(503, "saturated", f"{what} is saturated; retry after {RETRY_AFTER_S} s",
                    {"Retry-After": str(RETRY_AFTER_S)})


# Whatever layer rejects a request, the client sees the one error shape.
@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError):
    return error_response(exc)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException):
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(ApiError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)))


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError):
    return error_response(ApiError(422, "invalid_parameter", str(exc.errors()[:1])))


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    return error_response(ApiError(500, "internal_error", f"{type(exc).__name__}: the server failed on this request"))


@serve.deployment(name="ingress", max_ongoing_requests=64, max_queued_requests=128,
                  backpressure_config={"status_code": 503, "retry_after_s": RETRY_AFTER_S})
@serve.ingress(app)
class Ingress:
    def __init__(self, generator, board, model: Dict[str, Any], limits: Dict[str, Any], token_sha256: Optional[str]):
        self.generator, self.board = generator, board
        self.labels, self.defaults, self.image_size = model["labels"], model["defaults"], model["image_size"]
        self.limits = Limits(**limits)
        self.request = request_model(self.labels, self.defaults, self.limits)
        self.token_sha256 = token_sha256
        self.decoder = ThreadPoolExecutor(self.limits.decode_workers, thread_name_prefix="decode")
        self.decoding = 0
        self.in_flight = 0
        self._info = None
        self.jobs: set = set()                     # background tasks of the jobs this replica started
        with open(PAGE, encoding="utf-8") as f:
            self.page = f.read()
        app.openapi = self.openapi

    async def info(self) -> Dict[str, Any]:
        if self._info is None:
            self._info = await self.generator.info.remote()
        return self._info

    def _authorise(self, request: Request) -> str:
        """The caller's identity: the SHA-256 of its bearer token ("" with authentication off)."""
        if self.token_sha256 is None:
            return ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode()).hexdigest() if scheme.lower() == "bearer" else ""
        if not hmac.compare_digest(given, self.token_sha256):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token", {"WWW-Authenticate": REALM})
        return given

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page_(self):
        return HTMLResponse(self.page, headers={"Content-Security-Policy": "default-src 'self'; "
                                                "img-src 'self' blob: data:; media-src 'self' blob:; "
                                                "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"})

    @app.get("/healthz")
    async def healthz(self):
        info = await self.info()
        return {"status": "ok", "checkpoint_hash": info["checkpoint_hash"], "device": info["device"]}

    @app.get("/v1/labels")
    async def labels(self, request: Request):
        self._authorise(request)
        info = await self.info()
        return {"labels": self.labels, "prompts": info["prompts"], "defaults": self.defaults,
                "limits": asdict(self.limits)}

    async def _prepare(self, request: Request):
        """(params, letterboxed image) of a generation request: read, validated, decoded."""
        image_bytes, raw = await self._read(request)
        params = validate_params(raw, self.request, self.defaults, self.limits)
        if params.prompt is not None:
            prompts = (await self.info())["prompts"]
            if not prompts["accepted"]:
                raise ApiError(422, "prompts_unavailable", f"this server cannot read free-text prompts "
                                                           f"({prompts['reason']}); use a label")
        return params, await self._decode(image_bytes)

    async def _sample(self, params, image: np.ndarray, job: Optional[str] = None) -> Dict[str, Any]:
        if self.in_flight >= self.limits.max_in_flight:
            raise saturated("the sampler")
        self.in_flight += 1
        try:
            return await self.generator.generate.remote({"image": image, "label": params.label,
                                                         "prompt": params.prompt, "seed": params.seed,
                                                         "sampler": params.sampler, "steps": params.steps,
                                                         "guidance": params.guidance, "frames": params.frames,
                                                         "job": job})
        except BackPressureError:
            raise saturated("the sampler") from None
        finally:
            self.in_flight -= 1

    async def _metadata(self, params, result: Dict[str, Any]) -> Dict[str, Any]:
        info = await self.info()
        return {"label": params.label, "prompt": params.prompt, "seed": params.seed, "sampler": params.sampler,
                "steps": params.steps, "guidance": params.guidance, "frames": params.frames, "format": params.format,
                "checkpoint_hash": info["checkpoint_hash"], "batch_size": result["batch_size"],
                "replica": result["replica"]}

    @app.post("/v1/generate")
    async def generate(self, request: Request):
        start = time.time()
        self._authorise(request)
        params, image = await self._prepare(request)
        result = await self._sample(params, image)
        encode_start = time.time()
        metadata = await self._metadata(params, result)
        body, media = await asyncio.get_running_loop().run_in_executor(
            self.decoder, self._encode, result, params.format, metadata)
        metadata["timing"] = {"generate_seconds": round(result["generate_seconds"], 4),
                              "encode_seconds": round(time.time() - encode_start, 4),
                              "total_seconds": round(time.time() - start, 4)}
        if params.format == "json":
            return JSONResponse({"metadata": metadata, "frames": body})
        return Response(content=body, media_type=media, headers={"X-LFDM-Metadata": json.dumps(metadata)})

    # ------------------------------------------------------------------ the asynchronous jobs API
    @app.post("/v1/jobs", status_code=202)
    async def create_job(self, request: Request):
        owner = self._authorise(request)
        params, image = await self._prepare(request)
        job_id = secrets.token_urlsafe(18)
        public = {k: getattr(params, k) for k in ("label", "prompt", "sampler", "steps", "guidance", "seed",
                                                  "frames")}
        if not await self.board.create.remote(job_id, owner, public):
            raise saturated("the job queue")
        task = asyncio.get_running_loop().create_task(self._run_job(job_id, params, image))
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)
        return JSONResponse({"id": job_id, "status": "queued", "links": self._links(job_id)}, status_code=202)

    async def _run_job(self, job_id: str, params, image: np.ndarray) -> None:
        try:
            result = await self._sample(params, image, job=job_id)
            if result.get("cancelled") or not await self.board.encoding.remote(job_id):
                return
            metadata = await self._metadata(params, result)
            files = await asyncio.get_running_loop().run_in_executor(self.decoder, self._job_files, result, metadata)
            await self.board.finish.remote(job_id, files, metadata)
        except ApiError as exc:
            await self.board.fail.remote(job_id, exc.code, exc.message)
        except Exception as exc:                              # the job says it failed; the server stays up
            await self.board.fail.remote(job_id, "internal_error", f"{type(exc).__name__}: generation failed")

    @staticmethod
    def _links(job_id: str) -> Dict[str, str]:
        base = f"v1/jobs/{job_id}"
        return {"status": base, "events": f"{base}/events", **{name: f"{base}/{name}" for name in JOB_FILES}}

    async def _job(self, job_id: str, owner: str) -> Dict[str, Any]:
        state = await self.board.get.remote(job_id, owner)
        if state is None:
            raise ApiError(404, "unknown_job", f"no job {job_id[:40]!r} for this token (unknown, or expired)")
        return state

    @app.get("/v1/jobs/{job_id}")
    async def get_job(self, job_id: str, request: Request):
        state = await self._job(job_id, self._authorise(request))
        return {**state, "links": self._links(job_id)}

    @app.delete("/v1/jobs/{job_id}")
    async def cancel_job(self, job_id: str, request: Request):
        status = await self.board.cancel.remote(job_id, self._authorise(request))
        if status is None:
            raise ApiError(404, "unknown_job", f"no job {job_id[:40]!r} for this token (unknown, or expired)")
        return {"id": job_id, "status": status}

    @app.get("/v1/jobs/{job_id}/events")
    async def job_events(self, job_id: str, request: Request):
        owner = self._authorise(request)
        await self._job(job_id, owner)                         # 404 before the stream starts
        return StreamingResponse(self._events(job_id, owner, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _events(self, job_id: str, owner: str, request: Request):
        """An SSE event each time the job's status or progress changes, until it ends (a method, not a closure:
        Serve ships this class by value, and a closure would not carry the module's names)."""
        last, deadline = None, time.time() + self.limits.events_max_s
        while time.time() < deadline:
            state = await self.board.get.remote(job_id, owner)
            if state is None:
                yield sse("failed", {"id": job_id, "status": "failed",
                                     "error": {"code": "unknown_job", "message": "the job expired"}})
                return
            snapshot = (state["status"], state["progress"])
            if snapshot != last:
                last = snapshot
                yield sse(state["status"], {**state, "links": self._links(job_id)})
            if state["status"] in TERMINAL or await request.is_disconnected():
                return
            await asyncio.sleep(0.2)

    @app.get("/v1/jobs/{job_id}/{name}")
    async def job_file(self, job_id: str, name: str, request: Request):
        owner = self._authorise(request)
        if name not in JOB_FILES:
            raise ApiError(404, "not_found", f"a job's files are {list(JOB_FILES)}")
        data = await self.board.file.remote(job_id, owner, name)
        if data is None:
            state = await self._job(job_id, owner)
            raise ApiError(409, "not_ready", f"job {job_id} is {state['status']}; its files exist once it is done")
        return Response(content=data, media_type=JOB_FILES[name],
                        headers={"Content-Disposition": f'attachment; filename="{job_id[:12]}-{name}"'})

    def _job_files(self, result: Dict[str, Any], metadata: Dict[str, Any]) -> Dict[str, bytes]:
        from lfdm.io.outputs import encode, flow_frames, npz_bytes, occlusion_frames
        frames, size = result["frames"], result["frames"].shape[1]
        return {"video.mp4": encode(frames, "mp4", fps=10.0), "video.gif": encode(frames, "gif", fps=10.0),
                "video.npz": npz_bytes(frames, result["flows"], result["occlusions"], metadata),
                "flow.gif": encode(flow_frames(result["flows"], size), "gif", fps=10.0),
                "occlusion.gif": encode(occlusion_frames(result["occlusions"], size), "gif", fps=10.0)}

    async def _body(self, request: Request) -> bytes:
        """The request body, at most max_body_bytes (chunked bodies included) within body_timeout_s."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            raise ApiError(413, "too_large", f"request body over {limit} bytes")
        chunks: List[bytes] = []

        async def read() -> None:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "too_large", f"request body over {limit} bytes")
                chunks.append(chunk)
        try:
            await asyncio.wait_for(read(), self.limits.body_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(408, "body_timeout", f"the request body did not arrive within "
                                                f"{self.limits.body_timeout_s:g} s") from None
        return b"".join(chunks)

    async def _read(self, request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("multipart/form-data", "application/json"):
            raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")
        body = await self._body(request)
        if ctype == "application/json":
            raw = parse_json_object(body)
            encoded = raw.pop("image_base64", None)
            if not isinstance(encoded, str):
                raise ApiError(422, "missing_image", "JSON field 'image_base64' (a base64 string) is required")
            try:
                return base64.b64decode(encoded, validate=True), raw
            except ValueError:
                raise ApiError(422, "invalid_image", "image_base64 is not valid base64") from None

        async def replay():                                        # the capped body, for the form parser
            return {"type": "http.request", "body": body, "more_body": False}
        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
        except Exception as exc:                                   # malformed multipart of any kind
            raise ApiError(400, "malformed_multipart", f"the multipart body cannot be parsed: {exc}"[:300]) from None
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "missing_image", "multipart field 'image' (a file) is required")
        data = await upload.read(self.limits.max_image_bytes + 1)
        raw = {k: v for k, v in form.multi_items() if k != "image"}
        if len(raw) != len([k for k, _ in form.multi_items() if k != "image"]):
            raise ApiError(422, "invalid_parameter", "each parameter may be given once")
        return data, raw

    async def _decode(self, data: bytes) -> np.ndarray:
        """Decode and letterbox off the event loop, on a bounded pool; a full pool answers 503."""
        if len(data) > self.limits.max_image_bytes:
            raise ApiError(413, "too_large", f"image over {self.limits.max_image_bytes} bytes")
        if self.decoding >= self.limits.max_decoding:
            raise saturated("image decoding")
        self.decoding += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.decoder, self._image, data)
        finally:
            self.decoding -= 1

    def _image(self, data: bytes) -> np.ndarray:
        from lfdm.data.images_in import ImageError, decode_image, image_tensor
        limits = self.limits
        try:
            array = decode_image(data, "image", max_pixels=limits.max_pixels, max_side=limits.max_side,
                                 reduce_to=self.image_size)
        except ImageError as exc:
            raise ApiError(413, "too_many_pixels", str(exc)) if exc.too_large else \
                ApiError(422, "invalid_image", str(exc)) from None
        return image_tensor(array, self.image_size).numpy()

    @staticmethod
    def _encode(result: Dict[str, Any], fmt: str, metadata: Dict[str, Any]):
        from lfdm.io.outputs import encode, npz_bytes
        frames = result["frames"]
        if fmt in ("mp4", "gif"):
            return encode(frames, fmt, fps=10.0), FORMATS[fmt]
        if fmt == "npz":
            return npz_bytes(frames, result["flows"], result["occlusions"], metadata), FORMATS[fmt]
        from PIL import Image
        urls = []
        for frame in frames:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="PNG")
            urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
        return urls, FORMATS[fmt]

    def openapi(self) -> Dict[str, Any]:
        """FastAPI's schema, with POST /v1/generate described by the request model that validates it."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            params = self.request.model_json_schema()
            defs = params.pop("$defs", {})
            multipart = {**params, "required": ["image"], "properties": {
                "image": {"type": "string", "format": "binary", "description": "PNG, JPEG, WebP, BMP or GIF"},
                **params["properties"]}}
            as_json = {**params, "required": ["image_base64"], "properties": {
                "image_base64": {"type": "string", "description": "base64 of the image file's bytes"},
                **params["properties"]}}
            error = {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
            errors = {"content": {"application/json": {"schema": error}}}
            schema["paths"]["/v1/generate"]["post"].update({
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": multipart},
                                                              "application/json": {"schema": as_json}}},
                "responses": {
                    "200": {"description": "the video in the requested format; metadata in the X-LFDM-Metadata "
                                           "header (JSON), or for format=json {metadata, frames: [PNG data URLs]}",
                            "content": {media: {} for media in FORMATS.values()}},
                    "400": {"description": "malformed body", **errors},
                    "401": {"description": "missing or wrong bearer token", **errors},
                    "408": {"description": "the body arrived too slowly", **errors},
                    "413": {"description": "body or image over the limits", **errors},
                    "415": {"description": "neither multipart/form-data nor application/json", **errors},
                    "422": {"description": "a parameter or the image is invalid, out of range or too costly",
                            **errors},
                    "503": {"description": "saturated: retry after the Retry-After header's seconds", **errors}}})
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            app.openapi_schema = schema
        return app.openapi_schema


APP_ARGS = ("checkpoint", "max_batch_size", "batch_wait_timeout_s", "limits", "auth", "generator_options",
            "ingress_options")


def check_app_args(args: Dict[str, Any]) -> None:
    """Errors that name what is wrong in the app's args (serve_config.yaml ``args:``), before anything starts."""
    unknown = sorted(set(args) - set(APP_ARGS))
    if unknown:
        raise ValueError(f"unknown Serve app argument(s) {unknown}; accepted: {list(APP_ARGS)}")
    if not args.get("checkpoint"):
        raise ValueError("the Serve app needs args.checkpoint (a local path or s3:// URI of a full model)")
    limit_names = {f.name for f in fields(Limits)}
    bad = sorted(set(args.get("limits") or {}) - limit_names)
    if bad:
        raise ValueError(f"unknown limit(s) {bad}; accepted: {sorted(limit_names)}")
    Limits(**(args.get("limits") or {}))


def build_app(args: Dict[str, Any]):
    """The application: ``checkpoint`` (required), ``max_batch_size``, ``batch_wait_timeout_s``, ``limits``
    (serve.schema.Limits fields), ``auth`` (default true: the token comes from $LFDM_SERVE_TOKEN where this runs),
    and ``generator_options`` / ``ingress_options`` (Serve deployment options, e.g. num_replicas)."""
    from lfdm.checkpoint import read_info
    check_app_args(args)
    token_sha256 = None
    if args.get("auth", True):
        token = os.environ.get(TOKEN_ENV, "")
        if not token:
            raise ValueError(f"authentication is on and no token is set: set {TOKEN_ENV} where the app is built "
                             f"(serve_config.yaml: runtime_env.env_vars), or set args.auth to false to serve "
                             f"without authentication behind a gateway of your own")
        token_sha256 = hashlib.sha256(token.encode()).hexdigest()
    info = read_info(args["checkpoint"])
    cfg = info.config
    model = {"labels": list(info.labels), "image_size": cfg.data.image_size,
             "defaults": {"sampler": cfg.sample.sampler, "steps": cfg.sample.steps, "guidance": cfg.sample.guidance,
                          "guidance_from": cfg.sample.guidance_from, "prompt_projection": cfg.sample.prompt_projection,
                          "frames": cfg.data.num_frames, "keyframe_stride": cfg.diffusion.keyframe_stride,
                          "timesteps": cfg.diffusion.timesteps}}
    limits = Limits(**(args.get("limits") or {}))
    board = JobBoard.bind(limits.job_ttl_s, limits.job_max_bytes, limits.job_max_active)
    generator = Generator.options(**(args.get("generator_options") or {})).bind(
        args["checkpoint"], int(args.get("max_batch_size", 8)), float(args.get("batch_wait_timeout_s", 0.05)), board)
    return Ingress.options(**(args.get("ingress_options") or {})).bind(
        generator, board, model, dict(args.get("limits") or {}), token_sha256)
