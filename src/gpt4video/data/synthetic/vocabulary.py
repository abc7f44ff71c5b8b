"""Holds the fixed vocabulary of the synthetic world (shapes, colours, motions and their phrases, counts,
backgrounds), which other renderers and evaluations rely on."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gpt4video.errors import InputError


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


#: Each motion's opposite: what an object doing it is seen to do when the clip plays backwards.
REVERSED_MOTIONS: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up",
                                    "still": "still", "grows": "shrinks", "shrinks": "grows"}


def _check_choice(what: str, value: object, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; this world knows {', '.join(allowed)}")


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("’", "").replace("'", "")
    return re.findall(r"[a-z0-9]+", text)
