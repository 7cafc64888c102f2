"""Rendering of the synthetic motion dataset: a textured, saturated foreground shape (the subject)
moving over a textured, nearly grey background (so motion occludes and disoccludes background).

Coordinates: pixels with y pointing down; an object's pose is (center, radius, angle) and
image point p = center + radius * R(angle) @ q for q in the shape's unit frame, so a growing
angle turns the object clockwise on screen.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

SHAPES = ("ellipse", "rectangle", "triangle", "star", "cross", "diamond", "arrow", "trapezoid")
TEXTURES = ("stripes", "checker", "dots", "bands")
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Subject:
    """Appearance of one synthetic subject: a shape, two saturated colours and a texture."""
    name: str
    shape: str
    hue_a: float
    hue_b: float
    texture: str
    frequency: float

    @staticmethod
    def make(index: int) -> "Subject":
        golden = 0.618033988749895
        hue = (0.07 + index * golden) % 1.0
        return Subject(name=f"s{index:02d}", shape=SHAPES[index % len(SHAPES)], hue_a=hue,
                       hue_b=(hue + 0.12 + 0.1 * (index % 3)) % 1.0,
                       texture=TEXTURES[(index // 2 + index) % len(TEXTURES)],
                       frequency=2.5 + (index % 4) * 0.75)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in the unit frame (|q| <= ~1); shapes are roughly centred on their area centroid."""
    au, av = np.abs(u), np.abs(v)
    if shape == "ellipse":
        return (u / 0.95) ** 2 + (v / 0.55) ** 2 <= 1
    if shape == "rectangle":
        return (au <= 0.9) & (av <= 0.55)
    if shape == "triangle":   # centroid at the origin
        return (v <= 0.5) & (v >= -1.0 + 1.5 * au / 0.87) & (au <= 0.87)
    if shape == "star":
        angle = np.arctan2(v, u)
        radius = np.hypot(u, v)
        return radius <= 0.55 + 0.4 * np.cos(5 * angle) ** 2 * (np.cos(5 * angle) > 0)
    if shape == "cross":
        return ((au <= 0.9) & (av <= 0.3)) | ((au <= 0.3) & (av <= 0.9))
    if shape == "diamond":
        return au / 0.95 + av / 0.65 <= 1
    if shape == "arrow":      # asymmetric: head to the right
        return ((u >= -0.9) & (u <= 0.2) & (av <= 0.28)) | ((u >= 0.2) & (u <= 0.9) & (av <= 0.8 * (0.9 - u) / 0.7))
    if shape == "trapezoid":
        return (av <= 0.6) & (au <= 0.55 + 0.35 * (v + 0.6) / 1.2)
    raise ValueError(f"unknown shape {shape!r}")


def texture_value(texture: str, frequency: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Oriented pattern in [0, 1] attached to the object, so rotation is visible inside it."""
    f = frequency
    if texture == "stripes":
        return (np.sin(np.pi * f * (u + 0.5 * v)) > 0).astype(np.float32)
    if texture == "checker":
        return ((np.floor(f * u) + np.floor(0.7 * f * v)) % 2).astype(np.float32)
    if texture == "dots":
        gu, gv = (f * u) % 1 - 0.5, (f * v + 0.25 * np.floor(f * u)) % 1 - 0.5
        return (gu ** 2 + gv ** 2 < 0.09).astype(np.float32)
    if texture == "bands":
        return 0.5 + 0.5 * np.sin(np.pi * f * u) * (v > -0.2)
    raise ValueError(f"unknown texture {texture!r}")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _bilinear_upsample(grid: np.ndarray, factor: int) -> np.ndarray:
    pos = (np.arange(grid.shape[0] * factor) + 0.5) / factor - 0.5
    i0 = np.clip(np.floor(pos).astype(int), 0, grid.shape[0] - 2)
    frac = np.clip(pos - i0, 0, 1).astype(np.float32)
    rows = grid[i0] * (1 - frac)[:, None] + grid[i0 + 1] * frac[:, None]
    return rows[:, i0] * (1 - frac)[None, :] + rows[:, i0 + 1] * frac[None, :]


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Grey-ish (saturation < 0.1) textured background, (S, S, 3) float in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    value = np.full((size, size), 0.5, np.float32)
    for _ in range(4):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
        value += rng.uniform(0.04, 0.1) * np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + phase)
    coarse = rng.uniform(-1, 1, (size // 8 + 2, size // 8 + 2)).astype(np.float32)
    value += 0.12 * _bilinear_upsample(coarse, 8)[:size, :size]
    value = np.clip(value, 0.15, 0.85)
    tint = _hsv(rng.uniform(0, 1), 1.0, 1.0) - 0.5
    rgb = value[..., None] + rng.uniform(0.0, 0.04) * tint[None, None, :]
    return np.clip(rgb, 0, 1)


def render_frame(subject: Subject, bg: np.ndarray, center: np.ndarray, radius: float,
                 angle: float) -> np.ndarray:
    """One frame, float (S, S, 3) in [0, 1], anti-aliased by supersampling."""
    size = bg.shape[0]
    n = size * SUPERSAMPLE
    coords = (np.arange(n, dtype=np.float32) + 0.5) / SUPERSAMPLE
    py, px = np.meshgrid(coords, coords, indexing="ij")
    dx, dy = px - center[0], py - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * dx + sin * dy) / radius          # inverse rotation R(-angle)
    v = (-sin * dx + cos * dy) / radius
    alpha = shape_mask(subject.shape, u, v).astype(np.float32)
    tex = texture_value(subject.texture, subject.frequency, u, v)[..., None]
    colour = tex * _hsv(subject.hue_a, 0.85, 0.95) + (1 - tex) * _hsv(subject.hue_b, 0.75, 0.8)
    fg = (alpha[..., None] * colour).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    alpha = alpha.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))[..., None]
    return bg * (1 - alpha) + fg
