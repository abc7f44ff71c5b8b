"""Wraps training texts in video requests and framings (the same for harmful and harmless ones) and makes
the augmented training copies (framed, or typed in a hurry)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ...errors import InputError
from .sources import Item


#: Video-request wrappers: the first set is used to augment training texts, the second only to score
#: the test split (so the test measures framing the head never saw).
TRAIN_WRAPPERS: tuple[str, ...] = (
    "Make a video of this: {x}", "Generate a short clip about the following. {x}", "Can you create a video? {x}",
    "Please render a video for this request: {x}", "Video request: {x}",
)
TEST_WRAPPERS: tuple[str, ...] = (
    "I want a video. {x}", "Create an animation for me: {x}",
)


#: The framings wrapped around harmful and harmless texts alike (``safety/data/``; training only).
FRAMINGS = Path(__file__).resolve().parent.parent / "data" / "framings.json"


def framings(path: Path = FRAMINGS) -> tuple[str, ...]:
    """Framing templates (``{x}``: the request) wrapped around harmful and harmless texts alike."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found = tuple(t for t in data["harmful_and_benign"] if "{x}" in t)
    if not found:
        raise InputError(f"{path}: no framing templates with {{x}}")
    return found


def wrap(items: Iterable[Item], templates: Sequence[str], rng: np.random.Generator, fraction: float) -> list[Item]:
    """Copies of a ``fraction`` of ``items`` wrapped in a random template (same group)."""
    out = []
    for item in items:
        if rng.random() < fraction:
            t = templates[int(rng.integers(len(templates)))]
            out.append(Item(t.replace("{x}", item.text), item.labels, item.source, item.group, item.weight))
    return out


def typo(text: str, rng: np.random.Generator, rate: float = 0.06) -> str:
    """``text`` as typed in a hurry: lower case, and about ``rate`` of its letters dropped, doubled or
    swapped with the next one."""
    chars = list(text.lower())
    out: list[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        r = rng.random() if c.isalpha() else 1.0
        if r < rate / 3:
            pass  # dropped
        elif r < 2 * rate / 3:
            out += [c, c]
        elif r < rate and i + 1 < len(chars):
            out += [chars[i + 1], c]
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


def augment(items: Sequence[Item], rng: np.random.Generator, templates: Sequence[str]) -> list[Item]:
    """Training copies that teach the head what a request asks for, whatever it is wrapped in: half of the
    items in a video-request wrapper or a framing (role-play, "for my film", a harmless request first; the
    same templates for harmful and harmless texts, so a framing carries no label), a fifth with typos."""
    out = wrap(items, templates, rng, 0.5)
    out += [Item(typo(it.text, rng), it.labels, it.source, it.group, it.weight) for it in items if rng.random() < 0.2]
    return out
