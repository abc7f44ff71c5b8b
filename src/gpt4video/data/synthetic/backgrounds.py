"""Defines the backgrounds of the synthetic world, measures how much an object colour stands out from one,
samples them and reads background phrases ("noisy dark blue") back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt4video.errors import InputError

from .vocabulary import (
    BACKGROUND_COLORS,
    BACKGROUND_KINDS,
    BACKGROUND_RGB,
    COLOR_RGB,
    COLORS,
    GRADIENT_DIRECTIONS,
    MIN_CONTRAST,
    NOISE_STD,
    _check_choice,
    _tokens,
)


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


#: "dark" alone is black, "light" alone is white.
_LONE_BACKGROUND_WORDS = {"dark": "black", "light": "white"}


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
