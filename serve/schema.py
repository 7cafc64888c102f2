"""Request parameters, their bounds, and the JSON error format of the HTTP API."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lfdm.diffusion.samplers import SAMPLERS, check_sampler

FORMATS = {"mp4": "video/mp4", "gif": "image/gif", "npz": "application/octet-stream", "json": "application/json"}


@dataclass(frozen=True)
class Limits:
    max_image_bytes: int = 10 * 2**20
    max_pixels: int = 4096 * 4096
    max_steps: int = 250                 # for samplers that take fewer steps than the schedule (not ddpm)
    min_frames: int = 2
    max_frames: int = 64
    max_guidance: float = 20.0
    max_seed: int = 2**63 - 1
    max_in_flight: int = 64              # generation requests one ingress replica forwards at once; more -> 503


class ApiError(Exception):
    """Becomes a 4xx JSON response: {"error": {"code": ..., "message": ...}}."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class GenerateParams:
    label: Optional[str]
    sampler: str
    steps: int
    guidance: float
    seed: int
    frames: int
    format: str


def _number(raw, kind, name: str):
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ApiError(422, "invalid_parameter", f"{name} must be {'an integer' if kind is int else 'a number'}, "
                                                 f"got {raw!r}") from None
    if kind is int and isinstance(raw, float) and not raw.is_integer():
        raise ApiError(422, "invalid_parameter", f"{name} must be an integer, got {raw!r}")
    return value


def validate_params(raw: dict, *, labels, defaults: dict, limits: Limits) -> GenerateParams:
    """Check every client parameter against the model and the limits; errors name the problem."""
    known = {"label", "sampler", "steps", "guidance", "seed", "frames", "format", "image_base64"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ApiError(422, "unknown_parameter", f"unknown parameter(s) {unknown}; accepted: {sorted(known - {'image_base64'})}")
    label = raw.get("label")
    if label in ("", None):
        label = None
    elif label not in labels:
        raise ApiError(422, "unknown_label", f"unknown label {label!r}; this model accepts: {list(labels)}")
    sampler = raw.get("sampler") or defaults["sampler"]
    if sampler not in SAMPLERS:
        raise ApiError(422, "invalid_parameter", f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    steps = _number(raw.get("steps", defaults["steps"] if sampler == defaults["sampler"] else 25), int, "steps")
    try:
        spec = check_sampler(sampler, steps, defaults["timesteps"])
    except ValueError as exc:
        raise ApiError(422, "out_of_range", str(exc)) from None
    if not spec.all_steps and not 1 <= steps <= limits.max_steps:
        raise ApiError(422, "out_of_range", f"steps must be in 1..{limits.max_steps} for {sampler}, got {steps}")
    guidance = _number(raw.get("guidance", defaults["guidance"]), float, "guidance")
    if not 0 <= guidance <= limits.max_guidance:
        raise ApiError(422, "out_of_range", f"guidance must be in 0..{limits.max_guidance}, got {guidance}")
    seed = _number(raw.get("seed", 0), int, "seed")
    if not 0 <= seed <= limits.max_seed:
        raise ApiError(422, "out_of_range", f"seed must be in 0..{limits.max_seed}, got {seed}")
    frames = _number(raw.get("frames", defaults["frames"]), int, "frames")
    if not limits.min_frames <= frames <= limits.max_frames:
        raise ApiError(422, "out_of_range", f"frames must be in {limits.min_frames}..{limits.max_frames}, got {frames}")
    fmt = raw.get("format") or "mp4"
    if fmt not in FORMATS:
        raise ApiError(422, "invalid_parameter", f"format must be one of {list(FORMATS)}, got {fmt!r}")
    return GenerateParams(label, sampler, steps, guidance, seed, frames, fmt)
