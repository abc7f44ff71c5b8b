"""Draws scenes of the synthetic world as anti-aliased RGB frames and writes them as clips."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .scenes import Scene, SceneObject
from .vocabulary import BACKGROUND_RGB, COLOR_RGB, NOISE_STD


#: Supersampling factor of the renderer (anti-aliasing).
SUPERSAMPLE = 4


def _background_pixels(scene: Scene) -> np.ndarray:
    """The background as ``(H, W, 3)`` float32 RGB (the same for every frame)."""
    bg = scene.background
    h, w = scene.height, scene.width
    first = np.asarray(BACKGROUND_RGB[bg.colors[0]], dtype=np.float32)
    if bg.kind == "gradient":
        second = np.asarray(BACKGROUND_RGB[bg.colors[1]], dtype=np.float32)
        if bg.direction == "vertical":
            ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]  # (H, 1, 1)
        else:
            ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]  # (1, W, 1)
        return np.broadcast_to(first * (1 - ramp) + second * ramp, (h, w, 3)).astype(np.float32)
    image = np.broadcast_to(first, (h, w, 3)).astype(np.float32)
    if bg.kind == "noise":
        noise = np.random.default_rng([scene.seed, 7]).normal(0.0, NOISE_STD, size=(h, w, 1))
        image = np.clip(image + noise.astype(np.float32), 0, 255)  # gray noise, static over time
    return image


def _coverage(obj: SceneObject, t: float, width: int, height: int) -> tuple[np.ndarray, int, int] | None:
    """How much of each pixel the object covers at time ``t``: an ``(h, w)`` float32 patch in
    [0, 1] and its top-left corner (x0, y0); ``None`` if the object is outside the frame."""
    left, top, right, bottom = obj.box(t, width, height)
    x0, y0 = max(0, math.floor(left) - 1), max(0, math.floor(top) - 1)
    x1, y1 = min(width, math.ceil(right) + 1), min(height, math.ceil(bottom) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    s = SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    draw = ImageDraw.Draw(canvas)
    # Supersampled coordinates relative to the patch.
    l, tp, r, b = ((left - x0) * s, (top - y0) * s, (right - x0) * s, (bottom - y0) * s)
    if obj.shape == "circle":
        draw.ellipse((l, tp, r, b), fill=255)
    elif obj.shape == "square":
        draw.polygon([(l, tp), (r, tp), (r, b), (l, b)], fill=255)
    else:  # equilateral triangle pointing up, inscribed in the circle of diameter size (its
        # centroid at the centre, so growing or shrinking does not shift it)
        cx, cy, radius = (l + r) / 2, (tp + b) / 2, (r - l) / 2
        half_side = radius * math.sqrt(3) / 2
        draw.polygon([(cx, cy - radius), (cx + half_side, cy + radius / 2), (cx - half_side, cy + radius / 2)], fill=255)
    patch = canvas.reduce(s)  # box filter: the fraction of covered subpixels
    return np.asarray(patch, dtype=np.float32) / 255.0, x0, y0


def render_frames(scene: Scene) -> np.ndarray:
    """Draw ``scene`` as ``(num_frames, height, width, 3)`` uint8 RGB frames.

    Shapes are anti-aliased (drawn at :data:`SUPERSAMPLE` × resolution and box-filtered) and
    composited over the background in list order (later objects on top).
    """
    background = _background_pixels(scene)  # (H, W, 3)
    frames = np.empty((scene.num_frames, scene.height, scene.width, 3), dtype=np.uint8)
    for i, t in enumerate(scene.times()):
        frame = background.copy()
        for obj in scene.objects:
            cover = _coverage(obj, float(t), scene.width, scene.height)
            if cover is None:
                continue
            alpha, x0, y0 = cover
            h, w = alpha.shape
            region = frame[y0 : y0 + h, x0 : x0 + w]  # (h, w, 3) view
            color = np.asarray(COLOR_RGB[obj.color], dtype=np.float32)
            region += (color - region) * alpha[:, :, None]
        frames[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames


def write_clip(scene: Scene, path: str | os.PathLike[str]) -> Path:
    """Render ``scene`` and write it to ``path`` (an ``.mp4`` gives h264) at the scene's fps,
    atomically. Returns the path written."""
    from gpt4video.video.writing import write_video

    return write_video(path, render_frames(scene), fps=scene.fps)
