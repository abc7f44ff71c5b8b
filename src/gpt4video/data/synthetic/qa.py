"""Asks questions about a scene of the synthetic world with one-word answers (MSVD-QA style), worded by the
template families of :mod:`gpt4video.data.phrasing`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt4video.data.phrasing import PHRASINGS, Phrase, Wording, classic, color_slot, np_slot, ref_slot, shapes_slot

from .captioning import _article, _noun_phrase
from .scenes import Scene, SceneObject, _as_rng
from .vocabulary import _NUMBER_WORDS, COLORS, COUNTS, MOTION_PHRASES, MOTIONS, SHAPES, _check_choice


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
