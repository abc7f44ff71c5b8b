"""The synthetic video world: scenes, rendering, captions, questions, dialogues and data splits.

No pretrained vision-language model, video-caption data set or text-to-video weights can be
installed on the project's machines, so the project renders its own small world of videos whose
ground truth is exact (see ``synthetic-world.md``). This module is that world:

- **Vocabulary** (fixed; other renderers and evaluations rely on it): :data:`SHAPES`,
  :data:`COLORS`, :data:`MOTIONS`, :data:`COUNTS` and the backgrounds (:class:`Background`).
- **Scenes**: a :class:`Scene` holds 1 to 3 :class:`SceneObject` s on a background. It is fully
  determined by its seed (:func:`sample_scene`), or built for a requested description
  (:func:`scene_from_spec`).
- **Pixels**: :func:`render` draws a scene as ``(T, H, W, 3)`` uint8 frames (anti-aliased by
  supersampling); :func:`write_clip` writes them as an mp4 through the project's writer.
- **Text**: :func:`caption` / :func:`captions` (paraphrases), :func:`questions` (MSVD-QA style,
  one-word answers), :func:`dialogue` (GPT4Video-50k style, including generation requests answered
  with ``<video_prompt>…</video_prompt>``), and :func:`parse_prompt`, which reads a caption of this
  world (or a request in its common synonyms) back into a :class:`PromptSpec` for the offline
  text-to-video renderer. The user's side (questions, requests) is worded by the template families of
  :mod:`gpt4video.data.phrasing` (``phrasing="train"``, ``"heldout"`` or one family); replies are canonical.
- **Grading**: :func:`normalize_answer` and :func:`answers_match` (normalised exact match).
- **Splits**: :func:`split_seeds` (disjoint seed ranges) and :func:`build_split` (clips + JSONL).

Geometry conventions (all stored as fractions, so a scene is resolution independent in spirit,
but placement is checked for the scene's own ``width`` × ``height``):

- ``x``, ``y``: the centre of the object's bounding box at the first frame, as fractions of the
  frame's width and height (``y`` grows downwards).
- ``size``: the side of the square box that holds the object at the first frame, as a fraction
  of ``min(width, height)``: a circle's diameter, a square's side, the diameter of the circle
  an (upward, equilateral) triangle is inscribed in. Objects are centred on ``(x, y)``.
- ``speed``: for left/right, the distance travelled over the whole clip as a fraction of the
  width; for up/down, as a fraction of the height; for grows/shrinks, the ratio between the
  largest and the smallest size; ``0`` for still.
- Time runs linearly from ``t = 0`` (first frame) to ``t = 1`` (last frame).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from gpt4video.config import atomic_write_text
from gpt4video.data.phrasing import (
    COLOR_WORDS,
    MOTION_ADJECTIVES,
    PHRASINGS,
    SHAPE_WORDS,
    Phrase,
    Wording,
    background_slot,
    bg_np_slot,
    classic,
    color_slot,
    feature_slot,
    motion_slot,
    np_slot,
    objects_slot,
    ref_slot,
    shapes_slot,
)
from gpt4video.errors import InputError

__all__ = [
    "BACKGROUND_COLORS",
    "BACKGROUND_KINDS",
    "BACKGROUND_RGB",
    "COLORS",
    "COLOR_RGB",
    "COUNTS",
    "MIN_CONTRAST",
    "MOTIONS",
    "MOTION_PHRASES",
    "QA",
    "QA_ANSWERS",
    "QA_TYPES",
    "REVERSED_MOTIONS",
    "SHAPES",
    "SPLITS",
    "Background",
    "MotionPhrase",
    "ObjectSpec",
    "PromptSpec",
    "Scene",
    "SceneObject",
    "answers_match",
    "build_split",
    "caption",
    "captions",
    "contrast",
    "dialogue",
    "normalize_answer",
    "object_orders",
    "parse_prompt",
    "questions",
    "render",
    "sample_scene",
    "scene_from_spec",
    "split_seeds",
    "time_reversed",
    "write_clip",
]

# ============================================================================================
# Vocabulary (fixed)

#: The shapes of this world.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

#: Object colours and their RGB values (pairwise clearly distinct).
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
}
#: The object colours of this world.
COLORS: tuple[str, ...] = tuple(COLOR_RGB)

#: The motions of this world (also the one-word answers to motion questions).
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "still", "grows", "shrinks")
#: The motions that move an object across the frame.
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")

#: How many objects a clip holds.
COUNTS: tuple[int, ...] = (1, 2, 3)

#: Background colours and their RGB values: black, gray, white and dark tints.
BACKGROUND_RGB: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (118, 118, 118),
    "white": (255, 255, 255),
    "dark blue": (18, 28, 78),
    "dark green": (16, 64, 34),
    "dark red": (78, 18, 18),
    "dark purple": (52, 20, 72),
}
BACKGROUND_COLORS: tuple[str, ...] = tuple(BACKGROUND_RGB)

#: plain: one colour; gradient: two colours blended across the frame; noise: one colour plus light
#: static noise.
BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "noise")
GRADIENT_DIRECTIONS: tuple[str, ...] = ("horizontal", "vertical")

#: Standard deviation (0-255 scale) of the light noise of a "noise" background.
NOISE_STD = 8.0

#: Minimum RGB (Euclidean) distance between an object's colour and every colour its background
#: takes (for noise backgrounds, less two noise standard deviations).
MIN_CONTRAST = 100.0

#: Supersampling factor of the renderer (anti-aliasing).
SUPERSAMPLE = 4

#: Data splits and the first seed of each (the ranges are disjoint for up to 10 million clips).
SPLITS: dict[str, int] = {"train": 0, "val": 10_000_000, "test": 20_000_000}
_SPLIT_RANGE = 10_000_000


@dataclass(frozen=True)
class MotionPhrase:
    """One way of saying a motion: ``singular`` ("moves to the left"), ``plural`` ("move to the
    left") and ``gerund`` ("moving to the left")."""

    singular: str
    plural: str
    gerund: str


def _mp(singular: str, plural: str, gerund: str) -> MotionPhrase:
    return MotionPhrase(singular, plural, gerund)


def _direction_phrases(d: str) -> tuple[MotionPhrase, ...]:
    to_the = d in ("left", "right")
    far = f"to the {d}" if to_the else f"{d}ward"
    return (
        _mp(f"moves {d}", f"move {d}", f"moving {d}"),
        _mp(f"moves {far}", f"move {far}", f"moving {far}"),
        _mp(f"slides {d}", f"slide {d}", f"sliding {d}"),
        _mp(f"travels {far}", f"travel {far}", f"travelling {far}"),
    )


#: Paraphrases of each motion; the first is the canonical one ("moves left", "stays still", ...).
MOTION_PHRASES: dict[str, tuple[MotionPhrase, ...]] = {
    **{d: _direction_phrases(d) for d in DIRECTIONS},
    "still": (
        _mp("stays still", "stay still", "staying still"),
        _mp("does not move", "do not move", "not moving"),
        _mp("stays in place", "stay in place", "staying in place"),
        _mp("remains still", "remain still", "remaining still"),
    ),
    "grows": (
        _mp("grows", "grow", "growing"),
        _mp("gets bigger", "get bigger", "getting bigger"),
        _mp("grows larger", "grow larger", "growing larger"),
        _mp("expands", "expand", "expanding"),
    ),
    "shrinks": (
        _mp("shrinks", "shrink", "shrinking"),
        _mp("gets smaller", "get smaller", "getting smaller"),
        _mp("becomes smaller", "become smaller", "becoming smaller"),
        _mp("contracts", "contract", "contracting"),
    ),
}

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}


# ============================================================================================
# Scenes


def _check_choice(what: str, value: object, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; this world knows {', '.join(allowed)}")


@dataclass(frozen=True)
class Background:
    """A background: ``kind`` is "plain", "gradient" or "noise"; ``colors`` holds one name of
    :data:`BACKGROUND_COLORS` (two distinct ones for a gradient, from the first to the second);
    ``direction`` ("horizontal": left to right, "vertical": top to bottom) only matters for a
    gradient, and may be ``None`` in a parsed prompt (then it is chosen at random)."""

    kind: str = "plain"
    colors: tuple[str, ...] = ("black",)
    direction: str | None = None

    def __post_init__(self) -> None:
        _check_choice("background kind", self.kind, BACKGROUND_KINDS)
        object.__setattr__(self, "colors", tuple(self.colors))
        for name in self.colors:
            _check_choice("background colour", name, BACKGROUND_COLORS)
        wanted = 2 if self.kind == "gradient" else 1
        if len(self.colors) != wanted:
            raise InputError(f"a {self.kind} background has {wanted} colour(s), got {list(self.colors)}")
        if self.kind == "gradient" and self.colors[0] == self.colors[1]:
            raise InputError(f"a gradient needs two different colours, got {list(self.colors)}")
        if self.direction is not None:
            _check_choice("gradient direction", self.direction, GRADIENT_DIRECTIONS)

    def phrase(self) -> str:
        """How captions name it: "a gray background", "a noisy dark blue background",
        "a black to dark red gradient background"."""
        if self.kind == "gradient":
            return f"a {self.colors[0]} to {self.colors[1]} gradient background"
        if self.kind == "noise":
            return f"a noisy {self.colors[0]} background"
        return f"a {self.colors[0]} background"

    def same_look(self, other: Background | None) -> bool:
        """Whether ``other`` has the same kind and colours (the direction is ignored)."""
        return other is not None and (self.kind, self.colors) == (other.kind, other.colors)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "colors": list(self.colors), "direction": self.direction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Background:
        return cls(kind=data["kind"], colors=tuple(data["colors"]), direction=data.get("direction"))


def contrast(color: str, background: Background) -> float:
    """The smallest RGB distance between an object colour and any colour the background takes
    (less two noise standard deviations for a noisy background). At least :data:`MIN_CONTRAST`
    means "clearly different"."""
    rgb = np.asarray(COLOR_RGB[color], dtype=np.float64)
    ends = [np.asarray(BACKGROUND_RGB[name], dtype=np.float64) for name in background.colors]
    if len(ends) == 1:
        points = ends[0][None]
    else:  # every colour on the straight line between the two ends
        w = np.linspace(0.0, 1.0, 65)[:, None]
        points = ends[0] * (1 - w) + ends[1] * w
    distance = float(np.min(np.linalg.norm(points - rgb, axis=1)))
    if background.kind == "noise":
        distance -= 2 * NOISE_STD
    return distance


def _contrasting_colors(background: Background) -> list[str]:
    return [c for c in COLORS if contrast(c, background) >= MIN_CONTRAST]


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene (see the module docstring for the units of ``size``, ``x``, ``y``
    and ``speed``)."""

    shape: str
    color: str
    motion: str
    size: float
    x: float
    y: float
    speed: float

    def __post_init__(self) -> None:
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("colour", self.color, COLORS)
        _check_choice("motion", self.motion, MOTIONS)
        if not (self.size > 0):
            raise InputError(f"object size must be > 0, got {self.size}")
        if self.motion in ("grows", "shrinks") and not self.speed > 1:
            raise InputError(f"a {self.motion} object needs a size ratio (speed) > 1, got {self.speed}")
        if self.motion in DIRECTIONS and not self.speed > 0:
            raise InputError(f"a moving object needs speed > 0, got {self.speed}")

    def at(self, t: float) -> tuple[float, float, float]:
        """``(x, y, size)`` at time ``t`` in [0, 1] (same units as the fields)."""
        x, y, size = self.x, self.y, self.size
        if self.motion == "left":
            x -= self.speed * t
        elif self.motion == "right":
            x += self.speed * t
        elif self.motion == "up":
            y -= self.speed * t
        elif self.motion == "down":
            y += self.speed * t
        elif self.motion == "grows":
            size *= 1 + (self.speed - 1) * t
        elif self.motion == "shrinks":
            size *= 1 + (1 / self.speed - 1) * t
        return x, y, size

    def box(self, t: float, width: int, height: int) -> tuple[float, float, float, float]:
        """The bounding box ``(left, top, right, bottom)`` in pixels at time ``t``."""
        x, y, size = self.at(t)
        half = size * min(width, height) / 2
        return x * width - half, y * height - half, x * width + half, y * height + half

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape, "color": self.color, "motion": self.motion,
            "size": self.size, "x": self.x, "y": self.y, "speed": self.speed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneObject:
        return cls(**{k: data[k] for k in ("shape", "color", "motion", "size", "x", "y", "speed")})


@dataclass
class Scene:
    """A clip of this world: 1 to 3 objects on a background, ``num_frames`` frames of
    ``width`` × ``height`` at ``fps``. ``seed`` determines it (and the noise of its background)."""

    objects: list[SceneObject]
    background: Background
    seed: int
    width: int = 128
    height: int = 128
    num_frames: int = 16
    fps: float = 8.0

    def __post_init__(self) -> None:
        self.objects = list(self.objects)
        if not 1 <= len(self.objects) <= max(COUNTS):
            raise InputError(f"a scene holds 1 to {max(COUNTS)} objects, got {len(self.objects)}")
        for name, value, low in (("width", self.width, 16), ("height", self.height, 16), ("num_frames", self.num_frames, 2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise InputError(f"scene {name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"scene fps must be a positive number, got {self.fps!r}")

    def times(self) -> np.ndarray:
        """The time ``t`` in [0, 1] of each frame."""
        return np.linspace(0.0, 1.0, self.num_frames)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "width": self.width, "height": self.height,
            "num_frames": self.num_frames, "fps": self.fps,
            "background": self.background.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        return cls(
            objects=[SceneObject.from_dict(o) for o in data["objects"]],
            background=Background.from_dict(data["background"]),
            seed=int(data["seed"]), width=int(data["width"]), height=int(data["height"]),
            num_frames=int(data["num_frames"]), fps=float(data["fps"]),
        )


@dataclass(frozen=True)
class ObjectSpec:
    """A requested object: ``color`` or ``motion`` may be ``None`` (not said; chosen at random)."""

    shape: str
    color: str | None = None
    motion: str | None = None

    def __post_init__(self) -> None:
        _check_choice("shape", self.shape, SHAPES)
        if self.color is not None:
            _check_choice("colour", self.color, COLORS)
        if self.motion is not None:
            _check_choice("motion", self.motion, MOTIONS)


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for: 1 to 3 objects (one entry per object, so "two red circles" is two
    equal entries) and a background (``None``: not said)."""

    objects: tuple[ObjectSpec, ...]
    background: Background | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if not 1 <= len(self.objects) <= max(COUNTS):
            raise InputError(f"a prompt asks for 1 to {max(COUNTS)} objects, got {len(self.objects)}")

    @property
    def count(self) -> int:
        return len(self.objects)

    def _common(self, attribute: str) -> str | None:
        values = {getattr(o, attribute) for o in self.objects}
        return values.pop() if len(values) == 1 else None

    @property
    def shape(self) -> str | None:
        """The shape of every object, or ``None`` if they differ."""
        return self._common("shape")

    @property
    def color(self) -> str | None:
        """The colour of every object, or ``None`` if they differ or it was not said."""
        return self._common("color")

    @property
    def motion(self) -> str | None:
        """The motion of every object, or ``None`` if they differ or it was not said."""
        return self._common("motion")


def _as_rng(rng: np.random.Generator | int | None, fallback: int = 0) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(fallback if rng is None else rng)


def _sample_background(rng: np.random.Generator, must_contrast: Iterable[str] = ()) -> Background:
    """A random background against which every colour of ``must_contrast`` stands out."""
    needed = set(must_contrast)
    for _ in range(1000):
        kind = str(rng.choice(BACKGROUND_KINDS, p=[0.5, 0.25, 0.25]))
        if kind == "gradient":
            first, second = rng.choice(len(BACKGROUND_COLORS), size=2, replace=False)
            colors: tuple[str, ...] = (BACKGROUND_COLORS[first], BACKGROUND_COLORS[second])
            direction: str | None = str(rng.choice(GRADIENT_DIRECTIONS))
        else:
            colors, direction = (str(rng.choice(BACKGROUND_COLORS)),), None
        background = Background(kind, colors, direction)
        usable = _contrasting_colors(background)
        if len(usable) >= 3 and needed.issubset(usable):
            return background
    raise InputError(f"no background of this world contrasts with all of {sorted(needed)}")


def _size_and_speed(rng: np.random.Generator, motion: str, count: int, scale: float) -> tuple[float, float]:
    """Start size (fraction of the short side) and speed for an object with ``motion``."""
    if motion == "grows":
        return float(rng.uniform(0.12, 0.2)) * scale, float(rng.uniform(1.8, 2.4))
    if motion == "shrinks":
        return float(rng.uniform(0.28, 0.42)) * scale, float(rng.uniform(1.8, 2.4))
    size = float(rng.uniform(0.14 - 0.01 * (count - 1), 0.26 - 0.03 * (count - 1))) * scale
    return size, (float(rng.uniform(0.3, 0.55)) if motion in DIRECTIONS else 0.0)


def _overlap_too_much(a: SceneObject, b: SceneObject, width: int, height: int, times: np.ndarray) -> bool:
    """Whether the bounding boxes of ``a`` and ``b`` overlap by more than 10% of the smaller one
    at any frame."""
    for t in times:
        al, at_, ar, ab = a.box(t, width, height)
        bl, bt, br, bb = b.box(t, width, height)
        inter = max(0.0, min(ar, br) - max(al, bl)) * max(0.0, min(ab, bb) - max(at_, bt))
        smaller = min((ar - al) * (ab - at_), (br - bl) * (bb - bt))
        if inter > 0.1 * smaller:
            return True
    return False


def _place(
    rng: np.random.Generator,
    kinds: Sequence[tuple[str, str, str]],
    width: int,
    height: int,
    num_frames: int,
    scale: float,
    tries: int = 60,
) -> list[SceneObject] | None:
    """Give each (shape, colour, motion) a size, speed and start position that keep it inside
    the frame for the whole clip and apart from the others; ``None`` if that fails."""
    times = np.linspace(0.0, 1.0, num_frames)
    short = min(width, height)
    margin = 1.0  # pixels kept free between an object and the frame's edge
    placed: list[SceneObject] = []
    for shape, color, motion in kinds:
        for _ in range(tries):
            size, speed = _size_and_speed(rng, motion, len(kinds), scale)
            largest = size * (speed if motion == "grows" else 1.0)
            half = largest * short / 2 + margin  # pixels
            travel_x = speed * width if motion in ("left", "right") else 0.0
            travel_y = speed * height if motion in ("up", "down") else 0.0
            # Range of start centres (pixels) that keep the whole path inside the frame.
            x_lo, x_hi = half, width - half - travel_x
            y_lo, y_hi = half, height - half - travel_y
            if x_hi < x_lo or y_hi < y_lo:
                continue
            x_px, y_px = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)
            if motion == "left":
                x_px += travel_x
            if motion == "up":
                y_px += travel_y
            candidate = SceneObject(shape, color, motion, size, float(x_px / width), float(y_px / height), speed)
            if not any(_overlap_too_much(candidate, other, width, height, times) for other in placed):
                placed.append(candidate)
                break
        else:
            return None
    return placed


def _check_resolution(width: int, height: int, num_frames: int, fps: float) -> None:
    # Scene.__post_init__ does the real checks; this only makes the error come before sampling.
    Scene([SceneObject("circle", "red", "still", 0.2, 0.5, 0.5, 0.0)], Background(), 0, width, height, num_frames, fps)


def sample_scene(
    rng: np.random.Generator | int,
    *,
    width: int = 128,
    height: int = 128,
    num_frames: int = 16,
    fps: float = 8.0,
    num_objects: int | None = None,
) -> Scene:
    """A random scene, fully determined by its seed.

    Args:
        rng: A seed (int) or a ``numpy`` Generator; a Generator only draws the seed, so the
            result is always reproducible from ``scene.seed``.
        width, height, num_frames, fps: The clip's format.
        num_objects: 1 to 3, or ``None`` for a random count.

    Objects have distinct (shape, colour) pairs, colours that stand out from the background,
    start positions that keep them inside the frame for the whole clip, and barely overlap.
    """
    if isinstance(rng, np.random.Generator):
        seed = int(rng.integers(0, 2**31 - 1))
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        seed = int(rng)
    else:
        raise InputError(f"sample_scene needs a seed (int >= 0) or a numpy Generator, got {rng!r}")
    if num_objects is not None and num_objects not in COUNTS:
        raise InputError(f"num_objects must be one of {COUNTS} or None, got {num_objects!r}")
    _check_resolution(width, height, num_frames, fps)
    g = np.random.default_rng(seed)
    count = num_objects or int(g.choice(COUNTS, p=[0.4, 0.35, 0.25]))
    background = _sample_background(g)
    usable = _contrasting_colors(background)
    pairs = [(s, c) for s in SHAPES for c in usable]
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4):
        for _ in range(10):
            chosen = g.choice(len(pairs), size=count, replace=False)
            kinds = [(*pairs[i], str(g.choice(MOTIONS))) for i in chosen]
            objects = _place(g, kinds, width, height, num_frames, scale)
            if objects is not None:
                return Scene(objects, background, seed, width, height, num_frames, fps)
    raise RuntimeError(f"could not place {count} objects in a {width}x{height} frame (seed {seed})")


def scene_from_spec(
    shape: str | PromptSpec,
    color: str | None = None,
    motion: str | None = None,
    count: int = 1,
    *,
    background: Background | str | None = None,
    seed: int = 0,
    width: int = 128,
    height: int = 128,
    num_frames: int = 16,
    fps: float = 8.0,
) -> Scene:
    """A scene showing what was asked: ``count`` objects of ``shape``, ``color`` and ``motion``,
    or everything a :class:`PromptSpec` (from :func:`parse_prompt`) describes.

    What is not said (``None``: colour, motion, background, gradient direction) is chosen at
    random from ``seed``; sizes and positions always are. ``background`` may be a
    :class:`Background` or a phrase such as "gray", "noisy dark blue" or "black to white gradient".

    Raises:
        InputError: a word outside the vocabulary, a count outside 1..3, or an object colour that
            does not stand out from the requested background.
    """
    if isinstance(shape, PromptSpec):
        if color is not None or motion is not None or count != 1:
            raise InputError("scene_from_spec: pass either a PromptSpec or shape/color/motion/count, not both")
        spec = shape if background is None else replace(shape, background=_as_background(background))
    else:
        if count not in COUNTS:
            raise InputError(f"count must be one of {COUNTS}, got {count!r}")
        spec = PromptSpec(tuple(ObjectSpec(shape, color, motion) for _ in range(count)), _as_background(background))
    _check_resolution(width, height, num_frames, fps)
    g = np.random.default_rng(seed)
    spec = _complete_spec(spec, g)
    kinds = [(o.shape, o.color, o.motion) for o in spec.objects]
    assert spec.background is not None
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4, 0.3, 0.2):
        objects = _place(g, kinds, width, height, num_frames, scale, tries=100)
        if objects is not None:
            return Scene(objects, spec.background, int(seed), width, height, num_frames, fps)
    raise RuntimeError(f"could not place {kinds} in a {width}x{height} frame (seed {seed})")


def _as_background(background: Background | str | None) -> Background | None:
    if background is None or isinstance(background, Background):
        return background
    words = _tokens(background)
    if words and words[-1] == "background":
        words = words[:-1]
    while words and words[0] in ("a", "an", "the"):
        words = words[1:]
    parsed = _parse_background_words(words)
    if parsed is None:
        raise InputError(f"unknown background {background!r}; backgrounds are plain, noisy or gradient {', '.join(BACKGROUND_COLORS)}")
    return parsed


def _complete_spec(spec: PromptSpec, rng: np.random.Generator) -> PromptSpec:
    """Fill in what ``spec`` leaves open (at random), checking colours against the background."""
    given = {o.color for o in spec.objects if o.color is not None}
    background = spec.background
    if background is None:
        background = _sample_background(rng, given)
    elif background.kind == "gradient" and background.direction is None:
        background = replace(background, direction=str(rng.choice(GRADIENT_DIRECTIONS)))
    for name in sorted(given):
        if contrast(name, background) < MIN_CONTRAST:
            raise InputError(f"a {name} object would not stand out on {background.phrase()}")
    usable = _contrasting_colors(background)
    objects = []
    for o in spec.objects:
        objects.append(ObjectSpec(
            o.shape,
            o.color if o.color is not None else str(rng.choice(usable)),
            o.motion if o.motion is not None else str(rng.choice(MOTIONS)),
        ))
    return PromptSpec(tuple(objects), background)


def _as_spec(content: Scene | PromptSpec) -> PromptSpec:
    if isinstance(content, PromptSpec):
        return content
    return PromptSpec(tuple(ObjectSpec(o.shape, o.color, o.motion) for o in content.objects), content.background)


# ============================================================================================
# Rendering


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


def render(scene: Scene) -> np.ndarray:
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

    return write_video(path, render(scene), fps=scene.fps)


# ============================================================================================
# Phrases


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _noun_phrase(count: int, shape: str, color: str | None = None) -> str:
    """ "a red circle", "an orange square", "two red circles" (colour optional)."""
    words = f"{color} {shape}" if color else shape
    if count == 1:
        return f"{_article(words)} {words}"
    return f"{_NUMBER_WORDS[count]} {words}s"


@dataclass(frozen=True)
class _Group:
    """``count`` equal objects (shape, colour, motion), as captions mention them together."""

    count: int
    shape: str
    color: str
    motion: str

    def np(self) -> str:
        return _noun_phrase(self.count, self.shape, self.color)

    def verb(self, variant: int) -> str:
        phrases = MOTION_PHRASES[self.motion]
        phrase = phrases[variant % len(phrases)]
        return phrase.singular if self.count == 1 else phrase.plural

    def gerund(self, variant: int) -> str:
        phrases = MOTION_PHRASES[self.motion]
        return phrases[variant % len(phrases)].gerund


def _groups(content: Scene | PromptSpec) -> list[_Group]:
    counts: dict[tuple[str, str, str], int] = {}
    for o in content.objects:
        if o.color is None or o.motion is None:
            raise InputError("cannot describe an object whose colour or motion is not set")
        key = (o.shape, o.color, o.motion)
        counts[key] = counts.get(key, 0) + 1
    return [_Group(n, *key) for key, n in counts.items()]


Chooser = Callable[[int], int]  # chooser(n) -> an index in [0, n)


def _describe(groups: Sequence[_Group], style: str, choose: Chooser) -> str:
    """Objects joined by "and": style "clause" ("a red circle moves left"), "gerund" ("a red
    circle moving left"), "relative" ("a red circle that moves left") or "mixed"."""
    parts = []
    for g in groups:
        s = style if style != "mixed" else ("gerund", "relative")[choose(2)]
        variant = choose(len(MOTION_PHRASES[g.motion]))
        if s == "clause":
            parts.append(f"{g.np()} {g.verb(variant)}")
        elif s == "gerund":
            parts.append(f"{g.np()} {g.gerund(variant)}")
        else:
            parts.append(f"{g.np()} that {g.verb(variant)}")
    return _join(parts)


_NUM_TEMPLATES = 6


def _caption_with(content: Scene | PromptSpec, template: int, choose: Chooser) -> str:
    groups = _groups(content)
    if content.background is None:
        raise InputError("cannot caption a prompt without a background")
    bg = content.background.phrase()
    total = sum(g.count for g in groups)
    if len(groups) == 1:
        g = groups[0]
        there = "There is" if g.count == 1 else "There are"
        texts = (
            lambda: f"{_cap(_describe(groups, 'clause', choose))} on {bg}.",
            lambda: f"On {bg}, {_describe(groups, 'clause', choose)}.",
            lambda: f"{_cap(_describe(groups, 'gerund', choose))} on {bg}.",
            lambda: f"{there} {_describe(groups, 'gerund', choose)} on {bg}.",
            lambda: f"The video shows {_describe(groups, 'relative', choose)} on {bg}.",
            lambda: f"{_cap(bg)} with {_describe(groups, 'gerund', choose)}.",
        )
    else:
        word = _NUMBER_WORDS[total]
        texts = (
            lambda: f"{_cap(_describe(groups, 'clause', choose))} on {bg}.",
            lambda: f"On {bg}, {_describe(groups, 'clause', choose)}.",
            lambda: f"{_cap(word)} objects: {_describe(groups, 'mixed', choose)}, on {bg}.",
            lambda: f"There are {word} shapes on {bg}: {_describe(groups, 'gerund', choose)}.",
            lambda: f"The video shows {_describe(groups, 'relative', choose)} on {bg}.",
            lambda: f"{_cap(bg)} with {_describe(groups, 'gerund', choose)}.",
        )
    return texts[template % _NUM_TEMPLATES]()


def _rng_chooser(rng: np.random.Generator) -> Chooser:
    return lambda n: int(rng.integers(n))


def _cycle_chooser(start: int) -> Chooser:
    state = {"i": start}

    def choose(n: int) -> int:
        value = state["i"] % n
        state["i"] += 1
        return value

    return choose


def captions(scene: Scene | PromptSpec) -> list[str]:
    """All caption templates for ``scene`` (one paraphrase each, deterministic). The first is
    the canonical caption: "A red circle moves left on a gray background."."""
    out = [_caption_with(scene, 0, lambda n: 0)]
    out += [_caption_with(scene, k, _cycle_chooser(k)) for k in range(1, _NUM_TEMPLATES)]
    return out


def left_to_right(scene: Scene) -> Scene:
    """The same scene with its objects listed from left to right by where they start (then top to
    bottom): the order a caption can be read off the clip in, unlike the order objects were drawn in."""
    return replace(scene, objects=sorted(scene.objects, key=lambda o: (round(o.x, 2), round(o.y, 2))))


def object_orders(scene: Scene) -> list[str]:
    """The canonical caption with the objects in every order, the left-to-right one first (no
    duplicates): the readings stage-0 grounding accepts, since which object a caption names first
    says nothing about the clip."""
    first = left_to_right(scene)
    orders = [first.objects, *itertools.permutations(first.objects)]
    return list(dict.fromkeys(captions(replace(scene, objects=list(order)))[0] for order in orders))


#: Each motion's opposite: what an object doing it is seen to do when the clip plays backwards.
REVERSED_MOTIONS: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up",
                                    "still": "still", "grows": "shrinks", "shrinks": "grows"}


def time_reversed(scene: Scene) -> Scene:
    """The scene whose clip is ``scene``'s played backwards: each object starts where it ends (place and
    size), with the opposite motion at the same speed; the background does not change over time. Frame k
    of ``render(time_reversed(scene))`` is frame ``num_frames - 1 - k`` of ``render(scene)``."""
    def backwards(o: SceneObject) -> SceneObject:
        x, y, size = o.at(1.0)
        return replace(o, motion=REVERSED_MOTIONS[o.motion], x=x, y=y, size=size)

    return replace(scene, objects=[backwards(o) for o in scene.objects])


def caption(scene: Scene | PromptSpec, rng: np.random.Generator | int | None = None) -> str:
    """One caption of ``scene``: a random template and random motion paraphrases drawn from
    ``rng``; with ``rng=None``, the canonical caption (``captions(scene)[0]``)."""
    if rng is None:
        return captions(scene)[0]
    g = _as_rng(rng)
    return _caption_with(scene, int(g.integers(_NUM_TEMPLATES)), _rng_chooser(g))


# ============================================================================================
# Questions and grading


#: Question types and their possible (one-word) answers.
QA_TYPES: tuple[str, ...] = ("color", "shape", "count", "motion", "existence")
QA_ANSWERS: dict[str, tuple[str, ...]] = {
    "color": COLORS,
    "shape": SHAPES,
    "count": tuple(str(n) for n in COUNTS),
    "motion": MOTIONS,
    "existence": ("yes", "no"),
}


@dataclass(frozen=True)
class QA:
    """A question with its one-word answer, its type (one of :data:`QA_TYPES`) and the template family
    its wording comes from (:mod:`gpt4video.data.phrasing`)."""

    question: str
    answer: str
    type: str
    family: str = "classic"

    def to_dict(self) -> dict[str, str]:
        return {"question": self.question, "answer": self.answer, "type": self.type, "family": self.family}


def _refs(objects: Sequence[Any], index: int) -> dict[str, list[str]]:
    """Unambiguous ways to name ``objects[index]``, keyed by the attribute they mention
    ("shape", "color", "motion", "both" for colour and shape, "none" for "object")."""
    o = objects[index]
    others = [p for i, p in enumerate(objects) if i != index]
    refs: dict[str, list[str]] = {}
    if not any((p.shape, p.color) == (o.shape, o.color) for p in others):
        refs["both"] = [f"{o.color} {o.shape}"]
    if not any(p.shape == o.shape for p in others):
        refs["shape"] = [o.shape]
    if not any(p.color == o.color for p in others):
        refs["color"] = [f"{o.color} object", f"{o.color} shape"]
    if not any(p.motion == o.motion for p in others):
        refs["motion"] = [f"object that {MOTION_PHRASES[o.motion][0].singular}"]
    if not others:
        refs["none"] = ["object", "shape"]
    return refs


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _wording(phrasing: str, rng: np.random.Generator) -> Wording:
    """The wording of ``phrasing``, drawing from a child of ``rng`` (so ``rng``'s own draws, which decide
    what is asked, are the same whatever the phrasing)."""
    _check_choice("phrasing", phrasing, PHRASINGS)
    return Wording.for_rng(phrasing, rng)


def _qa_items(scene: Scene, rng: np.random.Generator, wording: Wording) -> list[tuple[QA, str]]:
    """The questions about ``scene``, each with a full-sentence answer for dialogues. ``rng`` decides
    what is asked (and the classic wording), ``wording`` how it is worded; the answers are canonical."""
    items: list[tuple[QA, str]] = []
    objects = scene.objects
    for index, o in enumerate(objects):
        refs = _refs(objects, index)
        for qtype, allowed in (
            ("color", ("shape", "motion", "none")),
            ("shape", ("color", "motion", "none")),
            ("motion", ("both", "shape", "color", "none")),
        ):
            options = [(key, r) for key in allowed for r in refs.get(key, [])]
            if not options:
                continue
            key, ref = _pick(rng, options)
            asked = wording.say(qtype, _pick(rng, classic(qtype)).format(ref=ref),
                                ref=ref_slot(key, o.shape, o.color, o.motion))
            if qtype == "color":
                qa, sentence = QA(asked.text, o.color, qtype, asked.family), f"The {ref} is {o.color}."
            elif qtype == "shape":
                qa, sentence = QA(asked.text, o.shape, qtype, asked.family), f"It is {_article(o.shape)} {o.shape}."
            else:
                variant = int(rng.integers(len(MOTION_PHRASES[o.motion])))
                qa = QA(asked.text, o.motion, qtype, asked.family)
                sentence = f"The {ref} {MOTION_PHRASES[o.motion][variant].singular}."
            items.append((qa, sentence))

    # Count: all objects, or those of one shape / one colour present in the clip.
    kind = int(rng.integers(3))
    if kind == 1:
        shape = _pick(rng, sorted({o.shape for o in objects}))
        asked, n = _count_question(objects, "shape", shape, rng, wording)
        noun = shape if n == 1 else f"{shape}s"
    elif kind == 2:
        color = _pick(rng, sorted({o.color for o in objects}))
        asked, n = _count_question(objects, "color", color, rng, wording)
        noun = f"{color} object" if n == 1 else f"{color} objects"
    else:
        n = len(objects)
        asked = wording.say("count_all", _pick(rng, classic("count_all")))
        noun = "object" if n == 1 else "objects"
    verb = "is" if n == 1 else "are"
    items.append((QA(asked.text, str(n), "count", asked.family), f"There {verb} {_NUMBER_WORDS[n]} {noun}."))

    # Existence: one present and one absent (shape, colour) pair, so yes and no are balanced.
    present = sorted({(o.shape, o.color) for o in objects})
    shape, color = present[int(rng.integers(len(present)))]
    np_ = _noun_phrase(1, shape, color)
    asked = wording.say("existence", _pick(rng, classic("existence")).format(np=np_), np=np_slot(shape, color))
    items.append((QA(asked.text, "yes", "existence", asked.family), f"Yes, there is {np_}."))
    absent = [(s, c) for s in SHAPES for c in COLORS if (s, c) not in present]
    near = [(s, c) for s, c in absent if any(s == ps or c == pc for ps, pc in present)]
    pool = near if near and rng.random() < 0.7 else absent  # mostly near misses: look carefully
    shape, color = pool[int(rng.integers(len(pool)))]
    np_ = _noun_phrase(1, shape, color)
    asked = wording.say("existence", _pick(rng, classic("existence")).format(np=np_), np=np_slot(shape, color))
    items.append((QA(asked.text, "no", "existence", asked.family), f"No, there is no {color} {shape}."))
    return items


def questions(scene: Scene, rng: np.random.Generator | int | None = None, *, phrasing: str = "train") -> list[QA]:
    """MSVD-QA style questions about ``scene`` with one-word answers: colour, shape and motion
    of every object that can be named unambiguously, one count question, and one "yes" and one
    "no" existence question (the "no" one about a (colour, shape) pair absent from the clip).
    ``rng=None`` uses a generator seeded by ``scene.seed``.

    ``phrasing`` words them (:mod:`gpt4video.data.phrasing`): "train" (the training families, mixed),
    "heldout" (the held-out families, for out-of-template evaluation) or one family's name ("classic":
    the fixed templates). The questions asked and their answers depend on ``rng`` alone."""
    g = _as_rng(rng, scene.seed)
    return [qa for qa, _ in _qa_items(scene, g, _wording(phrasing, g))]


def _count_question(objects: Sequence[SceneObject], key: str, value: str, rng: np.random.Generator,
                    wording: Wording) -> tuple[Phrase, int]:
    """ "How many circles are there?" (key "shape", value "circle"; a random template, worded by ``wording``)
    and how many of ``objects`` have that ``key``."""
    canonical = _pick(rng, classic(f"count_{key}")).format(**{key: value, "shapes": f"{value}s"})
    if key == "shape":
        asked = wording.say("count_shape", canonical, shapes=shapes_slot(value))
    else:
        asked = wording.say("count_color", canonical, color=color_slot(value))
    return asked, sum(getattr(o, key) == value for o in objects)


def count_questions(scene: Scene, rng: np.random.Generator | int | None = None, *, phrasing: str = "train") -> list[QA]:
    """Every shape and colour count question ``scene`` answers ("How many circles are there?" for each
    shape in it, "How many red objects are there?" for each colour), a random template each. :func:`questions`
    asks one count question per clip, and most shapes and colours occur once, so six in seven of its shape
    and colour counts are answered "1"; these are the material for training counts balanced by answer
    (``count_qa.jsonl`` of :func:`build_split`). ``rng=None`` uses a generator seeded by ``scene.seed``;
    ``phrasing`` as for :func:`questions`."""
    g = _as_rng(rng, scene.seed)
    wording = _wording(phrasing, g)
    out = []
    for key in ("shape", "color"):
        for value in sorted({getattr(o, key) for o in scene.objects}):
            asked, n = _count_question(scene.objects, key, value, g, wording)
            out.append(QA(asked.text, str(n), "count", asked.family))
    return out


_ARTICLES = frozenset({"a", "an", "the"})
_DIGITS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}


def normalize_answer(text: str) -> str:
    """Normalise an answer for grading: lower case, punctuation removed, articles (a, an, the)
    dropped, number words as digits, single spaces. ``"Two."`` → ``"2"``, ``"The Red"`` → ``"red"``."""
    words = re.sub(r"[^\w\s]|_", " ", str(text).lower()).split()
    return " ".join(_DIGITS.get(w, w) for w in words if w not in _ARTICLES)


def answers_match(pred: str, gold: str) -> bool:
    """Normalised exact match of a predicted answer with the gold one."""
    return normalize_answer(pred) == normalize_answer(gold)


# ============================================================================================
# Reading prompts back


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("’", "").replace("'", "")
    return re.findall(r"[a-z0-9]+", text)


# Other words people use for this world's words (shape nouns are in _SHAPE_NOUNS).
_WORD_ALIASES: dict[str, str] = {
    "backdrop": "background", "backdrops": "background", "grey": "gray",
    **{word: color for color, words in COLOR_WORDS.items() for word in words[1:]},  # "crimson" -> "red"
}
# Shape nouns ("circle", "balls", ...) -> (shape, plural).
_SHAPE_NOUNS = {word: (shape, plural) for shape, pairs in SHAPE_WORDS.items() for pair in pairs
                for plural, word in enumerate(pair)}
_COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "1": 1, "two": 2, "2": 2, "three": 3, "3": 3}
_SIZE_WORDS = frozenset({"small", "big", "large", "little", "tiny", "single"})
# Adjectives that say a motion before the noun ("a motionless circle").
_MOTION_ADJECTIVE_WORDS = {word: motion for motion, words in MOTION_ADJECTIVES.items() for word in words}
# Words that may precede a shape noun as part of its noun phrase.
_PRE_WORDS = frozenset(COLORS) | frozenset(_COUNT_WORDS) | {"the"} | _SIZE_WORDS | frozenset(_MOTION_ADJECTIVE_WORDS)
_TOTAL_NOUNS = frozenset({"objects", "shapes", "things", "object", "shape", "thing"})
_MOTION_KEYWORDS: dict[str, str] = {
    **{w: "left" for w in ("left", "leftward", "leftwards")},
    **{w: "right" for w in ("right", "rightward", "rightwards")},
    **{w: "up" for w in ("up", "upward", "upwards", "rises", "rise", "rising", "ascends", "ascend", "ascending",
                         "climbs", "climb", "climbing")},
    **{w: "down" for w in ("down", "downward", "downwards", "sinks", "sink", "sinking", "falls", "fall", "falling",
                           "drops", "drop", "dropping", "descends", "descend", "descending")},
    **{w: "still" for w in ("still", "place", "stationary", "motionless", "static", "unmoving", "not", "doesnt",
                            "dont", "isnt", "arent")},
    **{w: "grows" for w in ("grows", "grow", "growing", "grew", "bigger", "larger", "expands", "expand", "expanding",
                            "increases", "increase", "increasing")},
    **{w: "shrinks" for w in ("shrinks", "shrink", "shrinking", "shrank", "smaller", "contracts", "contract", "contracting",
                              "decreases", "decrease", "decreasing")},
}
# Glue words a caption or request may contain besides objects, motions and the background.
_FILLER = frozenset("""
    a an the and with that which where who whose in on of is are there it its this these those
    video videos clip clips scene animation shows show showing shown me make making generate create
    render draw please can could would will you i id want like see here short new another some
    while as at from over across against into within inside frame screen picture time slowly
    quickly steadily gradually smoothly size does do object objects shape shapes thing
    things moves move moving slides slide sliding travels travel travelling traveling goes go going
    stays stay staying remains remain remaining gets get getting becomes become becoming keeps keep
    keeping sits sit sitting stands stand standing both each all together same similar to one
    be being let lets us just
    heads head heading drifts drift drifting glides glide gliding floats float floating towards toward
    may have was wondering if love need wanna how about what im after for my little project mine kid
    request turn produce watch animate footage movie featuring give put front now then also
    hey hi ok okay so hmm thanks thank thx quick question
""".split())
# Words of a background phrase ("dark" alone is black, "light" alone is white).
_LONE_BACKGROUND_WORDS = {"dark": "black", "light": "white"}
_BACKGROUND_WORDS = frozenset(w for name in BACKGROUND_COLORS for w in name.split()) | {
    "to", "and", "gradient", "noisy", "grainy", "light",
}


def _parse_colour_names(words: list[str]) -> list[str] | None:
    """Split words such as ["dark", "blue", "black"] into background colour names."""
    names: list[str] = []
    i = 0
    while i < len(words):
        two = " ".join(words[i : i + 2])
        if two in BACKGROUND_RGB:
            names.append(two)
            i += 2
        elif words[i] in BACKGROUND_RGB:
            names.append(words[i])
            i += 1
        else:
            return None
    return names


def _parse_background_words(words: list[str]) -> Background | None:
    """Read the words before "background" ("noisy gray", "black to dark blue gradient", "dark")."""
    words = ["gray" if w == "grey" else w for w in words]
    if "gradient" in words:
        if words.count("gradient") != 1:
            return None
        rest = [w for w in words if w != "gradient"]
        for sep in ("to", "and"):
            if sep in rest:
                k = rest.index(sep)
                first, second = _parse_colour_names(rest[:k]), _parse_colour_names(rest[k + 1 :])
                if not first or not second or len(first) != 1 or len(second) != 1 or first == second:
                    return None
                return Background("gradient", (first[0], second[0]))
        return None
    kind = "plain"
    if words and words[0] in ("noisy", "grainy"):
        kind, words = "noise", words[1:]
    if len(words) == 1 and words[0] in _LONE_BACKGROUND_WORDS:
        words = [_LONE_BACKGROUND_WORDS[words[0]]]
    names = _parse_colour_names(words)
    if names is None or len(names) != 1:
        return None
    return Background(kind, (names[0],))


def _bare_background(words: list[str]) -> tuple[int, int, Background] | None:
    """A background named without the word "background" ("on black", "against a noisy dark blue"):
    ``(start, end, background)`` of the first "on" / "against" / "over", an optional article and the colour
    of a plain or noisy background, ended by the text's end or by a word that is not a shape noun."""
    colour_words = _BACKGROUND_WORDS - {"to", "and", "gradient"}
    for i, word in enumerate(words):
        if word not in ("on", "against", "over"):
            continue
        j = i + 1 + (i + 1 < len(words) and words[i + 1] in ("a", "an", "the"))
        k = j
        while k < len(words) and words[k] in colour_words:
            k += 1
        if k == j or (k < len(words) and words[k] in _SHAPE_NOUNS):
            continue
        background = _parse_background_words(words[j:k])
        if background is not None:
            return i, k, background
    return None


def parse_prompt(text: str) -> PromptSpec | None:
    """Read a caption or video prompt of this world back into a :class:`PromptSpec`.

    If ``text`` contains ``<video_prompt>…</video_prompt>``, only the first prompt is read.
    Colour, motion and background may be left unsaid (``None`` in the result). The result is
    ``None`` — nothing is guessed — when the text uses a word outside this world's vocabulary
    ("a dog running", "a yellow star", "on a beach"), names no object, asks for more than three
    objects, says two contradictory motions for one object, gives a count that does not match
    the objects, or puts an object on a background it would not stand out from.

    Besides the words of this world's captions it reads the common synonyms of
    :mod:`gpt4video.data.phrasing`: shapes ("ball", "dot", "disc", "box", "block"), a few colours
    ("crimson", "violet"), motions ("rising", "ascends", "sinking", "falls", "doesn't move", "a motionless
    circle", ...) and backgrounds ("backdrop", "on a dark background" for black, "a light background" for
    white, "on black" without the word "background").
    """
    match = re.search(r"<video_prompt>(.*?)(?:</video_prompt>|$)", text, flags=re.S)
    if match:
        text = match.group(1)
    words = [_WORD_ALIASES.get(w, w) for w in _tokens(text)]

    # The background: the run of background words just before "background", or "on black".
    background: Background | None = None
    if words.count("background") > 1:
        return None
    if "background" not in words:
        bare = _bare_background(words)
        if bare is not None:
            start, end, background = bare
            words = words[:start] + words[end:]
    else:
        end = words.index("background")
        start = end
        while start > 0 and words[start - 1] in _BACKGROUND_WORDS:
            start -= 1
        background = _parse_background_words(words[start:end])
        if background is None:
            return None
        if start > 0 and words[start - 1] in ("a", "an", "the"):
            start -= 1
        if start > 0 and words[start - 1] in ("on", "against", "over"):
            start -= 1
        words = words[:start] + words[end + 1 :]

    # Objects: a shape noun with the colour / count words just before it.
    # (start, noun index, shape, colour, count, motions said by adjectives)
    found: list[tuple[int, int, str, str | None, int, set[str]]] = []
    previous_noun = -1
    for i, word in enumerate(words):
        if word not in _SHAPE_NOUNS:
            continue
        shape, plural = _SHAPE_NOUNS[word]
        j = i
        while j - 1 > previous_noun and words[j - 1] in _PRE_WORDS:
            j -= 1
        # A noun phrase starts at its article or count word: "rising" in "a circle rising, a blue square"
        # belongs to the circle.
        opening = [k for k in range(j, i) if words[k] in _COUNT_WORDS or words[k] == "the"]
        j = opening[0] if opening else j
        pre = words[j:i]
        colors = {w for w in pre if w in COLOR_RGB}
        counts = [_COUNT_WORDS[w] for w in pre if w in _COUNT_WORDS]
        if len(colors) > 1 or len(counts) > 1:
            return None
        count = counts[0] if counts else (1 if not plural else 0)
        if count == 0:  # "red circles": how many is not said
            return None
        said = {_MOTION_ADJECTIVE_WORDS[w] for w in pre if w in _MOTION_ADJECTIVE_WORDS}
        found.append((j, i, shape, colors.pop() if colors else None, count, said))
        previous_noun = i
    if not found:
        return None

    # Everything else must be glue words, a total ("two objects") or one motion per object.
    stated_total: int | None = None
    objects: list[ObjectSpec] = []
    for k, (start, noun, shape, color, count, said) in enumerate(found):
        stop = found[k + 1][0] if k + 1 < len(found) else len(words)
        motions = set(said)
        segment = words[noun + 1 : stop]
        for m, word in enumerate(segment):
            nxt = segment[m + 1] if m + 1 < len(segment) else ""
            if word in _MOTION_KEYWORDS:
                motions.add(_MOTION_KEYWORDS[word])
            elif word in ("two", "three", "2", "3") and nxt in _TOTAL_NOUNS:
                if stated_total is not None:
                    return None
                stated_total = _COUNT_WORDS[word]
            elif word not in _FILLER:
                return None
        if len(motions) > 1:
            return None
        motion = motions.pop() if motions else None
        objects += [ObjectSpec(shape, color, motion)] * count
    lead = words[: found[0][0]]
    for m, word in enumerate(lead):
        nxt = lead[m + 1] if m + 1 < len(lead) else ""
        if word in _COUNT_WORDS and word not in ("a", "an", "one") and nxt in _TOTAL_NOUNS:
            if stated_total is not None:
                return None
            stated_total = _COUNT_WORDS[word]
        elif word not in _FILLER:
            return None

    if len(objects) > max(COUNTS) or (stated_total is not None and stated_total != len(objects)):
        return None
    if background is not None:
        if any(o.color is not None and contrast(o.color, background) < MIN_CONTRAST for o in objects):
            return None
    return PromptSpec(tuple(objects), background)


# ============================================================================================
# Dialogues

# The user's side of a dialogue is worded by gpt4video.data.phrasing (its "classic" family holds the fixed
# templates); the replies below stay as they are.
_GENERATION_REPLIES = (
    "Sure, here is a video of {ger}.",
    "Here you go: {ger}.",
    "Of course! This clip shows {rel}.",
    "Okay, I made a video of {ger}.",
    "Sure! Here is {ger}.",
)
_ORDINALS = ("first", "second")


def _turn(role: str, text: str, videos: Sequence[int] = ()) -> dict[str, Any]:
    return {"role": role, "text": text, "videos": list(videos)}


def _random_spec(rng: np.random.Generator) -> PromptSpec:
    """A random complete request: one object, several equal ones, or two different ones."""
    r = rng.random()
    shape = str(rng.choice(SHAPES))
    if r < 0.6:
        objects = (ObjectSpec(shape),)
    elif r < 0.8:
        objects = (ObjectSpec(shape),) * int(rng.integers(2, 4))
    else:
        other = str(rng.choice([s for s in SHAPES if s != shape]))
        objects = (ObjectSpec(shape), ObjectSpec(other))
    spec = _complete_spec(PromptSpec(objects), rng)
    if len(set(spec.objects)) == 1 and len(spec.objects) > 1:
        return spec
    # Different objects get different colours where possible, so the request reads naturally.
    seen: set[tuple[str, str]] = set()
    fixed = []
    usable = _contrasting_colors(spec.background)  # type: ignore[arg-type]
    for o in spec.objects:
        color = o.color
        while (o.shape, color) in seen:
            color = str(rng.choice(usable))
        seen.add((o.shape, color))
        fixed.append(replace(o, color=color))
    return PromptSpec(tuple(fixed), spec.background)


def _generation_exchange(spec: PromptSpec, rng: np.random.Generator, request: str | None = None,
                         wording: Wording | None = None) -> list[dict[str, Any]]:
    """A user request for ``spec`` (unless given; worded by ``wording``, by default the training families'
    mix drawing from a child of ``rng``) and the reply with its ``<video_prompt>`` (canonical)."""
    groups = _groups(spec)
    choose = _rng_chooser(rng)
    if request is None:
        wording = wording if wording is not None else _wording("train", rng)
        bg = f" on {spec.background.phrase()}" if spec.background is not None and rng.random() < 0.3 else ""
        template = _pick(rng, classic("generate"))
        canonical = template.format(
            rel=_describe(groups, "relative", choose), ger=_describe(groups, "gerund", choose),
            clause=_describe(groups, "clause", choose), bg=bg,
        )
        said = [(g.count, g.shape, g.color, g.motion) for g in groups]
        where = background_slot(spec.background.kind, spec.background.colors) if bg else ""  # type: ignore[union-attr]
        request = wording.say("generate", canonical, ger=objects_slot(said, "ger"), rel=objects_slot(said, "rel"),
                              clause=objects_slot(said, "clause"), bg=where).text
    reply = _pick(rng, _GENERATION_REPLIES).format(
        rel=_describe(groups, "relative", choose), ger=_describe(groups, "gerund", choose),
    )
    prompt = caption(spec, rng)
    return [_turn("user", request), _turn("assistant", f"{reply} <video_prompt>{prompt}</video_prompt>")]


def _modification(content: Scene | PromptSpec, rng: np.random.Generator,
                  wording: Wording) -> tuple[str, PromptSpec] | None:
    """A follow-up asking for a changed version of ``content``: request text (worded by ``wording``) and
    new spec."""
    spec = _as_spec(content)
    assert spec.background is not None
    options = [i for i in range(spec.count) if "both" in _refs(spec.objects, i)]
    if not options:
        return None
    index = options[int(rng.integers(len(options)))]
    o = spec.objects[index]
    refs = _refs(spec.objects, index).get("shape", []) + [f"{o.color} {o.shape}"]
    k = int(rng.integers(len(refs)))
    ref = refs[k]
    ref_words = ref_slot("shape" if k < len(refs) - 1 else "both", o.shape, o.color, o.motion)  # type: ignore[arg-type]
    kind = int(rng.integers(3))
    objects = list(spec.objects)
    if kind == 0:
        motion = str(rng.choice([m for m in MOTIONS if m != o.motion]))
        objects[index] = replace(o, motion=motion)
        variant = int(rng.integers(len(MOTION_PHRASES[motion])))
        phrase = MOTION_PHRASES[motion][variant]
        canonical = _pick(rng, classic("modify_motion")).format(ref=ref, verb=phrase.singular, gerund=phrase.gerund)
        request = wording.say("modify_motion", canonical, ref=ref_words, verb=motion_slot(motion, 0),
                              base=motion_slot(motion, 1), gerund=motion_slot(motion, 2)).text
        return request, PromptSpec(tuple(objects), spec.background)
    if kind == 1:
        taken = {(p.shape, p.color) for p in spec.objects}
        colors = [c for c in _contrasting_colors(spec.background) if (o.shape, c) not in taken]
        if colors:
            color = str(rng.choice(colors))
            objects[index] = replace(o, color=color)
            canonical = _pick(rng, classic("modify_color")).format(ref=ref, color=color,
                                                                   np=_noun_phrase(1, o.shape, color))
            request = wording.say("modify_color", canonical, ref=ref_words, color=color_slot(color),
                                  np=np_slot(o.shape, color)).text
            return request, PromptSpec(tuple(objects), spec.background)
    background = _sample_background(rng, {p.color for p in spec.objects if p.color})
    if background.same_look(spec.background):
        return None
    canonical = _pick(rng, classic("modify_background")).format(bg_np=background.phrase())
    request = wording.say("modify_background", canonical, bg_np=bg_np_slot(background.kind, background.colors)).text
    return request, PromptSpec(spec.objects, background)


def _clause(content: Scene | PromptSpec) -> str:
    """ "a red circle moves left on a gray background" (canonical, lower case)."""
    text = captions(content)[0].rstrip(".")
    return text[:1].lower() + text[1:]


def _single_clip_dialogue(scene: Scene, rng: np.random.Generator, wording: Wording) -> list[dict[str, Any]]:
    qa = _qa_items(scene, rng, wording)
    order = rng.permutation(len(qa))
    exchanges: list[tuple[str, str]] = []
    if rng.random() < 0.6:
        exchanges.append((wording.say("describe", _pick(rng, classic("describe"))).text, caption(scene, rng)))
    for k in order[: int(rng.integers(1, 4))]:
        question, sentence = qa[int(k)][0].question, qa[int(k)][1]
        exchanges.append((question, sentence))
    turns: list[dict[str, Any]] = []
    for n, (user, assistant) in enumerate(exchanges):
        turns += [_turn("user", user, [0] if n == 0 else []), _turn("assistant", assistant)]
    if rng.random() < 0.3:
        change = _modification(scene, rng, wording)
        if change is not None:
            turns += _generation_exchange(change[1], rng, change[0], wording)
    return turns


def _has(spec: PromptSpec, test: Callable[[ObjectSpec], bool]) -> bool:
    return any(test(o) for o in spec.objects)


def _two_clip_dialogue(first: Scene, second: Scene, rng: np.random.Generator, wording: Wording) -> list[dict[str, Any]]:
    a, b = _as_spec(first), _as_spec(second)
    exchanges: list[tuple[str, str]] = []

    def say(intent: str, **slots: Any) -> str:
        """The classic template of ``intent`` drawn from ``rng``, worded by ``wording``."""
        canonical = _pick(rng, classic(intent)).format(**{k: v for k, v in slots.items() if isinstance(v, str)})
        return wording.say(intent, canonical, **slots).text

    # "Which of the two videos has ...?" about something only one of them shows.
    Feature = tuple[str, Callable[[ObjectSpec], bool], Callable[[np.random.Generator], str]]
    features: list[Feature] = []
    for o in a.objects + b.objects:
        assert o.color is not None and o.motion is not None
        features += [
            (_noun_phrase(1, o.shape, o.color), lambda p, o=o: (p.shape, p.color) == (o.shape, o.color),
             feature_slot("np", o.shape, o.color, o.motion)),
            (_noun_phrase(1, o.shape), lambda p, o=o: p.shape == o.shape, feature_slot("shape", o.shape, o.color, o.motion)),
            (f"something that {MOTION_PHRASES[o.motion][0].singular}", lambda p, o=o: p.motion == o.motion,
             feature_slot("motion", o.shape, o.color, o.motion)),
        ]
        if o.motion in DIRECTIONS:
            features.append((f"a moving {o.shape}", lambda p, o=o: p.shape == o.shape and p.motion in DIRECTIONS,
                             feature_slot("moving", o.shape, o.color, o.motion)))
    unique = {name: (test, words) for name, test, words in features if _has(a, test) != _has(b, test)}
    if unique:
        name = _pick(rng, sorted(unique))
        test, words = unique[name]
        which = 0 if _has(a, test) else 1
        spec = (a, b)[which]
        match = next(o for o in spec.objects if test(o))
        group = _Group(1, match.shape, match.color, match.motion)  # type: ignore[arg-type]
        canonical = _pick(rng, classic("which_video")).format(f=name)
        question = wording.say("which_video", canonical, f=words).text
        exchanges.append((question, f"The {_ORDINALS[which]} one: in it, {group.np()} {group.verb(0)}."))

    exchanges.append((say("compare"), f"In the first video, {_clause(a)}. In the second video, {_clause(b)}."))
    which = int(rng.integers(2))
    exchanges.append((say("describe_nth", o=_ORDINALS[which]), caption((first, second)[which], rng)))
    total = a.count + b.count
    exchanges.append((
        say("count_both"),
        f"There are {total} objects in total: {a.count} in the first video and {b.count} in the second.",
    ))
    same = a.background.same_look(b.background)  # type: ignore[union-attr]
    exchanges.append((
        wording.say("same_background", classic("same_background")[0]).text,
        ("Yes, " if same else "No, ") + f"the first is on {a.background.phrase()} and the second on {b.background.phrase()}.",  # type: ignore[union-attr]
    ))

    keep = [exchanges[0]] + [exchanges[1 + int(k)] for k in rng.permutation(len(exchanges) - 1)[: int(rng.integers(1, 3))]]
    turns: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        # Both clips up front.
        for n, (user, assistant) in enumerate(keep):
            turns += [_turn("user", user, [0, 1] if n == 0 else []), _turn("assistant", assistant)]
    else:
        # The first clip, then the second one arrives with the comparison questions.
        turns += [_turn("user", wording.say("describe", _pick(rng, classic("describe"))).text, [0]),
                  _turn("assistant", caption(first, rng))]
        for n, (user, assistant) in enumerate(keep):
            if n == 0:
                user = wording.say("another_video", _pick(rng, classic("another_video")), noisy=False).text + user
            turns += [_turn("user", user, [1] if n == 0 else []), _turn("assistant", assistant)]
    return turns


def _generation_dialogue(rng: np.random.Generator, wording: Wording) -> list[dict[str, Any]]:
    spec = _random_spec(rng)
    turns = _generation_exchange(spec, rng, wording=wording)
    if rng.random() < 0.4:
        change = _modification(spec, rng, wording)
        if change is not None:
            turns += _generation_exchange(change[1], rng, change[0], wording)
    return turns


def dialogue(scenes: Sequence[Scene], rng: np.random.Generator | int | None = None, *,
             phrasing: str = "train") -> list[dict[str, Any]]:
    """A GPT4Video-50k style conversation about ``scenes`` (0, 1 or 2 clips).

    Returns turns ``{"role": "user" | "assistant", "text": str, "videos": [indices]}``, starting
    with the user and alternating. ``videos`` lists the clips (indices into ``scenes``) shown
    with that turn, each on the turn where it first appears (empty otherwise).

    - No scene: a generation request, sometimes with a follow-up change.
    - One scene: a description and questions answered in sentences, sometimes followed by a
      request for a changed version.
    - Two scenes: questions comparing them ("Which of the two videos has a moving triangle?",
      "What is different between them?").

    Generation replies end with ``<video_prompt>{a caption of this world}</video_prompt>``.

    ``phrasing`` words the user's turns as for :func:`questions`; the assistant's turns are canonical, and
    the dialogue's course depends on ``rng`` alone.
    """
    g = _as_rng(rng, scenes[0].seed if scenes else 0)
    wording = _wording(phrasing, g)
    if len(scenes) == 0:
        return _generation_dialogue(g, wording)
    if len(scenes) == 1:
        return _single_clip_dialogue(scenes[0], g, wording)
    if len(scenes) == 2:
        return _two_clip_dialogue(scenes[0], scenes[1], g, wording)
    raise InputError(f"dialogue() takes 0, 1 or 2 scenes, got {len(scenes)}")


# ============================================================================================
# Splits


def split_seeds(split: str, n: int) -> list[int]:
    """The seeds of the first ``n`` clips of ``split`` ("train", "val" or "test"); the splits
    draw from disjoint ranges (train from 0, val from 10,000,000, test from 20,000,000)."""
    _check_choice("split", split, SPLITS)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= _SPLIT_RANGE:
        raise InputError(f"number of clips must be an integer in [0, {_SPLIT_RANGE}], got {n!r}")
    return list(range(SPLITS[split], SPLITS[split] + int(n)))


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; leave an identical
    file untouched."""
    if path.is_file():
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
    atomic_write_text(path, text)


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _clip_is_valid(path: Path, scene: Scene) -> bool:
    """Whether ``path`` is a readable video of the scene's size and length."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    from gpt4video.errors import VideoError
    from gpt4video.video.decode import probe

    try:
        info = probe(path)
    except VideoError:
        return False
    return (info.width, info.height) == (scene.width, scene.height) and info.num_frames in (None, scene.num_frames)


def _qa_conversations(video: str, qas: Sequence[QA], rng: np.random.Generator, per_row: int = 4) -> list[dict]:
    """A clip's questions in shuffled order, several per conversation (``video`` attached to the first turn).

    Training on these costs one pass over the video tokens for several answers instead of one each.
    """
    order = rng.permutation(len(qas))
    rows = []
    for start in range(0, len(order), per_row):
        turns: list[dict[str, Any]] = []
        for k, i in enumerate(order[start : start + per_row]):
            turns.append(_turn("user", qas[i].question, [0] if k == 0 else []))
            turns.append(_turn("assistant", qas[i].answer))
        rows.append({"video": video, "turns": turns})
    return rows


def _dialogue_row(scenes: Sequence[Scene], videos: Sequence[str], i: int, phrasing: str) -> dict[str, Any]:
    """Clip ``i``'s row of ``dialogues.jsonl``: a dialogue about it and the next clip, a generation request,
    or one about it alone, as its seed decides; the user's turns worded by ``phrasing``."""
    scene = scenes[i]
    g = np.random.default_rng([scene.seed, 3])
    r = g.random()
    if r < 0.25 and len(scenes) > 1:
        j = (i + 1) % len(scenes)
        return {"videos": [videos[i], videos[j]], "turns": dialogue([scene, scenes[j]], g, phrasing=phrasing)}
    if r < 0.45:
        return {"videos": [], "turns": dialogue([], g, phrasing=phrasing)}
    return {"videos": [videos[i]], "turns": dialogue([scene], g, phrasing=phrasing)}


def _balanced_counts(several: list[dict], once: list[dict], rng: np.random.Generator) -> list[dict]:
    """All of ``several`` and half as many of ``once`` (drawn at random), shuffled."""
    keep = sorted(rng.choice(len(once), size=min(len(once), len(several) // 2), replace=False).tolist())
    rows = several + [once[i] for i in keep]
    return [rows[i] for i in rng.permutation(len(rows))]


def build_split(
    out_dir: str | os.PathLike[str],
    split: str,
    num_clips: int,
    *,
    width: int = 128,
    height: int = 128,
    num_frames: int = 16,
    fps: float = 8.0,
    progress: bool = True,
) -> Path:
    """Render a data split into ``out_dir/split`` and return that directory.

    Writes ``clips/<seed>.mp4`` for each seed of :func:`split_seeds` and six JSONL files whose
    ``video`` / ``videos`` paths are relative to the split directory:

    - ``captions.jsonl``: ``{"video", "caption", "captions", "grounding_captions",
      "reversed_grounding_captions"}``: the canonical caption naming objects from left to right, all
      paraphrases, the canonical caption with the objects in every order (the readings stage-0 grounding
      accepts), and the same for the clip played backwards (:func:`time_reversed`; stage 0's
      ``time_reversal`` trains on it too)
    - ``qa.jsonl``: ``{"video", "question", "answer", "type", "family"}``, one row per question, worded by the
      training template families (``family``: the one its wording comes from; :mod:`gpt4video.data.phrasing`)
    - ``qa_conversations.jsonl``: ``{"video", "turns"}``, a clip's questions shuffled, up to 4 per conversation
    - ``count_qa.jsonl``: rows like ``qa.jsonl``'s, shape and colour counts balanced by answer: every one the
      split's clips answer with 2 or 3 (:func:`count_questions`) and half as many answered 1, drawn at random
      (in ``qa.jsonl`` six in seven are answered 1, and a model trained on it learns to say 1)
    - ``dialogues.jsonl``: ``{"videos": [paths], "turns": [{"role", "text", "videos"}]}``,
      ``turns[i]["videos"]`` indexing the row's ``videos``
    - ``scenes.jsonl``: ``{"video", "scene"}`` with the ground truth (:meth:`Scene.to_dict`)

    Every split but "train" also gets the files of out-of-template evaluation, written for it only:

    - ``qa_heldout.jsonl``: the rows of ``qa.jsonl`` (same clips, questions asked and answers, in the same
      order), worded by the held-out template families instead
    - ``dialogues_heldout.jsonl``: the rows of ``dialogues.jsonl`` (same course and replies), the user's
      turns worded by the held-out families

    User turns of every file vary in wording (:mod:`gpt4video.data.phrasing`); replies are canonical.

    Every file is written atomically. Re-running is cheap and gives the same result: a clip
    already on disk that decodes at the right size and length is not rendered again, and a JSONL
    file whose content would not change is not rewritten.
    """
    from tqdm.auto import tqdm

    seeds = split_seeds(split, num_clips)
    _check_resolution(width, height, num_frames, fps)
    root = Path(out_dir) / split
    (root / "clips").mkdir(parents=True, exist_ok=True)

    scenes: list[Scene] = []
    videos: list[str] = []
    for seed in tqdm(seeds, desc=f"{split} clips", unit="clip", disable=not progress):
        scene = sample_scene(seed, width=width, height=height, num_frames=num_frames, fps=fps)
        relative = f"clips/{seed}.mp4"
        if not _clip_is_valid(root / relative, scene):
            write_clip(scene, root / relative)
        scenes.append(scene)
        videos.append(relative)

    heldout = split != "train"
    caption_rows, qa_rows, qa_conversation_rows, dialogue_rows, scene_rows = [], [], [], [], []
    heldout_qa_rows, heldout_dialogue_rows = [], []
    several, once = [], []  # count questions answered 2 or 3, and 1
    for i, (scene, video) in enumerate(zip(scenes, videos)):
        caption_rows.append({
            "video": video,
            "caption": captions(left_to_right(scene))[0],
            "captions": captions(scene),
            "grounding_captions": object_orders(scene),
            "reversed_grounding_captions": object_orders(time_reversed(scene)),
        })
        clip_qa = questions(scene, np.random.default_rng([scene.seed, 2]))
        qa_rows += [{"video": video, **qa.to_dict()} for qa in clip_qa]
        qa_conversation_rows += _qa_conversations(video, clip_qa, np.random.default_rng([scene.seed, 4]))
        for qa in count_questions(scene, np.random.default_rng([scene.seed, 5])):
            (once if qa.answer == "1" else several).append({"video": video, **qa.to_dict()})
        dialogue_rows.append(_dialogue_row(scenes, videos, i, "train"))
        if heldout:
            # The same questions and dialogues, worded by the held-out families only.
            same_qa = questions(scene, np.random.default_rng([scene.seed, 2]), phrasing="heldout")
            heldout_qa_rows += [{"video": video, **qa.to_dict()} for qa in same_qa]
            heldout_dialogue_rows.append(_dialogue_row(scenes, videos, i, "heldout"))
        scene_rows.append({"video": video, "scene": scene.to_dict()})

    for name, rows in (
        ("captions.jsonl", caption_rows),
        ("qa.jsonl", qa_rows),
        ("qa_conversations.jsonl", qa_conversation_rows),
        ("count_qa.jsonl", _balanced_counts(several, once, np.random.default_rng([seeds[0] if seeds else 0, 5]))),
        ("dialogues.jsonl", dialogue_rows),
        ("scenes.jsonl", scene_rows),
        *((("qa_heldout.jsonl", heldout_qa_rows), ("dialogues_heldout.jsonl", heldout_dialogue_rows)) if heldout else ()),
    ):
        _write_text_atomic(root / name, _jsonl(rows))
    return root
