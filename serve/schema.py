"""The HTTP contract: limits, the request model (the one source of validation and of the OpenAPI schema), the
error shape, and parsing of untrusted JSON bodies.

Every rejection is a 4xx JSON body ``{"error": {"code", "message"}}`` naming the problem.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Sequence, Type, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from lfdm.diffusion.keyframes import keyframe_count
from lfdm.diffusion.samplers import SAMPLERS, check_sampler
from lfdm.models.text import MAX_PROMPT_CHARS, check_prompt

FORMATS = {"mp4": "video/mp4", "gif": "image/gif", "npz": "application/octet-stream", "json": "application/json"}
# relative cost of one sampler step per frame: the classifier-free-guidance batch doubles it
COST_UNIT = "steps x frames x (2 if guidance is neither 0 nor 1 else 1)"


@dataclass(frozen=True)
class Limits:
    max_image_bytes: int = 10 * 2**20
    max_pixels: int = 4096 * 4096
    max_side: int = 8192                 # each side of the image, whatever the product
    max_steps: int = 250                 # for samplers that take fewer steps than the schedule (not ddpm)
    min_frames: int = 2
    max_frames: int = 64
    max_guidance: float = 20.0
    max_seed: int = 2**63 - 1
    max_prompt_chars: int = MAX_PROMPT_CHARS   # free-text prompts: longer ones are refused (422), not truncated
    max_cost: int = 64 * 1000 * 2        # per request, in COST_UNIT: ddpm-1000 with guidance on 64 frames
    max_in_flight: int = 64              # generation requests one ingress replica forwards at once; more -> 503
    body_timeout_s: float = 30.0         # the whole request body must arrive within this time; else 408
    decode_workers: int = 2              # threads that decode and resize images, off the event loop
    max_decoding: int = 8                # images decoding or waiting for a decode thread; more -> 503
    job_ttl_s: float = 600.0             # a finished job's files are kept this long
    job_max_bytes: int = 256 * 2**20     # and while all finished jobs' files fit in this (the oldest go first)
    job_max_active: int = 64             # jobs queued or running at once; more -> 503
    events_max_s: float = 3600.0         # an event stream ends after this long, whatever the job does

    @property
    def max_body_bytes(self) -> int:
        """An image of max_image_bytes in base64 (4/3) plus room for the other fields and multipart framing."""
        return self.max_image_bytes * 4 // 3 + 2**16


class ApiError(Exception):
    """Becomes a 4xx/503 JSON response: {"error": {"code": ..., "message": ...}}."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def request_model(labels: Sequence[str], defaults: dict, limits: Limits) -> Type[BaseModel]:
    """The parameters of POST /v1/generate for one model and its limits."""
    label_type = Optional[Literal[tuple(labels)]] if labels else Optional[str]
    return create_model(
        "GenerateParameters",
        __config__=ConfigDict(extra="forbid", strict=False),
        label=(label_type, Field(None, description="one of GET /v1/labels; null or omitted (and no prompt): "
                                                   "stochastic generation")),
        prompt=(Optional[str], Field(None, max_length=limits.max_prompt_chars,
                                     description=f"free text describing the motion instead of a label, e.g. 'slide "
                                                 f"it to the left'; 1..{limits.max_prompt_chars} characters")),
        sampler=(Literal[tuple(SAMPLERS)], Field(defaults["sampler"])),
        steps=(Optional[int], Field(None, ge=1, le=max(limits.max_steps, defaults["timesteps"]),
                                    description=f"sampler steps; default: the model's for its sampler, all "
                                                f"{defaults['timesteps']} for ddpm, else 25; at most "
                                                f"{limits.max_steps} for the others")),
        guidance=(float, Field(defaults["guidance"], ge=0, le=limits.max_guidance, allow_inf_nan=False)),
        seed=(int, Field(0, ge=0, le=limits.max_seed)),
        frames=(int, Field(defaults["frames"], ge=limits.min_frames, le=limits.max_frames)),
        format=(Literal[tuple(FORMATS)], Field("mp4")),
    )


@dataclass(frozen=True)
class GenerateParams:
    label: Optional[str]
    prompt: Optional[str]
    sampler: str
    steps: int
    guidance: float
    seed: int
    frames: int
    format: str


def validate_params(raw: Dict[str, Any], model: Type[BaseModel], defaults: dict, limits: Limits) -> GenerateParams:
    """Check every client parameter against the model's request model and the limits."""
    raw = {k: (None if k == "label" and v == "" else v) for k, v in raw.items()}
    try:
        p = model.model_validate(raw)
    except ValidationError as exc:
        raise _api_error(exc, model) from None
    prompt = None
    if p.prompt is not None:
        try:
            prompt = check_prompt(p.prompt, limits.max_prompt_chars)   # the length bound already held: empty is left
        except ValueError as exc:
            raise ApiError(422, "empty_prompt", f"{exc}, or omit it") from None
        if p.label is not None:
            raise ApiError(422, "conflicting_parameters", "give a label or a prompt, not both")
    steps = p.steps
    if steps is None:
        steps = (defaults["timesteps"] if SAMPLERS[p.sampler].all_steps
                 else defaults["steps"] if p.sampler == defaults["sampler"] else 25)
    try:
        spec = check_sampler(p.sampler, steps, defaults["timesteps"])
    except ValueError as exc:
        raise ApiError(422, "out_of_range", str(exc)) from None
    if not spec.all_steps and steps > limits.max_steps:
        raise ApiError(422, "out_of_range", f"steps must be in 1..{limits.max_steps} for {p.sampler}, got {steps}")
    try:
        keyframe_count(p.frames, defaults.get("keyframe_stride", 1))
    except ValueError as exc:
        raise ApiError(422, "out_of_range", f"frames={p.frames}: {exc}") from None
    cost = steps * p.frames * (1 if p.guidance in (0.0, 1.0) else 2)
    if cost > limits.max_cost:
        raise ApiError(422, "too_costly", f"this request costs {cost} ({COST_UNIT}); this server allows at most "
                                          f"{limits.max_cost} per request: use fewer steps or frames")
    return GenerateParams(p.label, prompt, p.sampler, steps, p.guidance, p.seed, p.frames, p.format)


def _api_error(exc: ValidationError, model: Type[BaseModel]) -> ApiError:
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(x) for x in error["loc"]) or "body"
    kind = error["type"]
    if kind == "extra_forbidden":
        accepted = sorted(model.model_fields)
        return ApiError(422, "unknown_parameter", f"unknown parameter {field!r}; accepted: {accepted}")
    if field == "label" and kind == "literal_error":
        return ApiError(422, "unknown_label", f"unknown label {_short(error.get('input'))}; this model accepts: "
                                              f"{_labels(model)}")
    if field == "prompt" and kind == "string_too_long":
        return ApiError(422, "prompt_too_long", f"prompt: {error['msg']}, got {len(error.get('input') or '')} "
                                                f"characters")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return ApiError(422, "out_of_range", f"{field}: {error['msg']}, got {_short(error.get('input'))}")
    return ApiError(422, "invalid_parameter", f"{field}: {error['msg']}, got {_short(error.get('input'))}")


def _labels(model: Type[BaseModel]) -> list:
    annotation = model.model_fields["label"].annotation
    for arg in get_args(annotation):
        if get_args(arg):
            return list(get_args(arg))
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_json_object(body: bytes) -> Dict[str, Any]:
    """An untrusted JSON body -> dict. Non-finite numbers (NaN, Infinity, 1e400), integers of more than 4300
    digits and nesting too deep for the parser are malformed JSON (400), not server errors."""
    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number out of range: {text[:20]}")
        return value

    def no_constant(name: str):
        raise ValueError(f"{name} is not JSON")
    try:
        raw = json.loads(body, parse_float=finite, parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:        # JSONDecodeError, digit limits, NaN/Infinity, depth
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {reason}") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "malformed_json", "the JSON body must be an object")
    return raw
