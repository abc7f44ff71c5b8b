"""Names the objects of the synthetic world and their motions in phrases, and captions a scene or prompt in
six templates."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from gpt4video.errors import InputError

from .scenes import PromptSpec, Scene, _as_rng, left_to_right
from .vocabulary import _NUMBER_WORDS, MOTION_PHRASES


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


def object_orders(scene: Scene) -> list[str]:
    """The canonical caption with the objects in every order, the left-to-right one first (no
    duplicates): the readings stage-0 grounding accepts, since which object a caption names first
    says nothing about the clip."""
    first = left_to_right(scene)
    orders = [first.objects, *itertools.permutations(first.objects)]
    return list(dict.fromkeys(captions(replace(scene, objects=list(order)))[0] for order in orders))


def caption(scene: Scene | PromptSpec, rng: np.random.Generator | int | None = None) -> str:
    """One caption of ``scene``: a random template and random motion paraphrases drawn from
    ``rng``; with ``rng=None``, the canonical caption (``captions(scene)[0]``)."""
    if rng is None:
        return captions(scene)[0]
    g = _as_rng(rng)
    return _caption_with(scene, int(g.integers(_NUM_TEMPLATES)), _rng_chooser(g))
