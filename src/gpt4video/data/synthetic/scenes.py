"""Defines the scenes of the synthetic world (1 to 3 objects on a background), samples them from a seed or
builds them for a requested description, and gives the seeds of each data split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpt4video.errors import InputError

from .backgrounds import Background, _as_background, _contrasting_colors, _sample_background, contrast
from .vocabulary import (
    COLORS,
    COUNTS,
    DIRECTIONS,
    GRADIENT_DIRECTIONS,
    MIN_CONTRAST,
    MOTIONS,
    REVERSED_MOTIONS,
    SHAPES,
    _check_choice,
)


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene. Its geometry is stored as fractions, so a scene is resolution independent
    in spirit (placement is checked for the scene's own ``width`` × ``height``):

    - ``x``, ``y``: the centre of the object's bounding box at the first frame, as fractions of the
      frame's width and height (``y`` grows downwards).
    - ``size``: the side of the square box that holds the object at the first frame, as a fraction
      of ``min(width, height)``: a circle's diameter, a square's side, the diameter of the circle
      an (upward, equilateral) triangle is inscribed in. Objects are centred on ``(x, y)``.
    - ``speed``: for left/right, the distance travelled over the whole clip as a fraction of the
      width; for up/down, as a fraction of the height; for grows/shrinks, the ratio between the
      largest and the smallest size; ``0`` for still.

    Time runs linearly from ``t = 0`` (first frame) to ``t = 1`` (last frame).
    """

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


def left_to_right(scene: Scene) -> Scene:
    """The same scene with its objects listed from left to right by where they start (then top to
    bottom): the order a caption can be read off the clip in, unlike the order objects were drawn in."""
    return replace(scene, objects=sorted(scene.objects, key=lambda o: (round(o.x, 2), round(o.y, 2))))


def time_reversed(scene: Scene) -> Scene:
    """The scene whose clip is ``scene``'s played backwards: each object starts where it ends (place and
    size), with the opposite motion at the same speed; the background does not change over time. Frame k
    of ``render_frames(time_reversed(scene))`` is frame ``num_frames - 1 - k`` of ``render_frames(scene)``."""
    def backwards(o: SceneObject) -> SceneObject:
        x, y, size = o.at(1.0)
        return replace(o, motion=REVERSED_MOTIONS[o.motion], x=x, y=y, size=size)

    return replace(scene, objects=[backwards(o) for o in scene.objects])


#: Data splits and the first seed of each (the ranges are disjoint for up to 10 million clips).
SPLITS: dict[str, int] = {"train": 0, "val": 10_000_000, "test": 20_000_000}
_SPLIT_RANGE = 10_000_000


def split_seeds(split: str, n: int) -> list[int]:
    """The seeds of the first ``n`` clips of ``split`` ("train", "val" or "test"); the splits
    draw from disjoint ranges (train from 0, val from 10,000,000, test from 20,000,000)."""
    _check_choice("split", split, SPLITS)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= _SPLIT_RANGE:
        raise InputError(f"number of clips must be an integer in [0, {_SPLIT_RANGE}], got {n!r}")
    return list(range(SPLITS[split], SPLITS[split] + int(n)))
