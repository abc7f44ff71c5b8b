"""Writes dialogues about 0, 1 or 2 scenes of the synthetic world (GPT4Video-50k style): descriptions,
questions answered in sentences, comparisons, and generation requests answered with a ``<video_prompt>``."""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from gpt4video.data.phrasing import (
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
)
from gpt4video.errors import InputError

from .backgrounds import _contrasting_colors, _sample_background
from .captioning import _describe, _Group, _groups, _join, _noun_phrase, _rng_chooser, caption, captions
from .qa import _pick, _qa_items, _refs, _wording
from .scenes import ObjectSpec, PromptSpec, Scene, _as_rng, _as_spec, _complete_spec
from .vocabulary import DIRECTIONS, MOTION_PHRASES, MOTIONS, SHAPES


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


def _said_objects(phrase: Phrase, template: str, canonical_slots: dict[str, str]) -> str:
    """The words a request used for its objects and where they are ("a crimson ball rising on a dark
    background"): its slots' values, or for a classic request the canonical words its template took."""
    slots = phrase.slots if phrase.family != "classic" else {
        name: canonical_slots[name] for _, name, _, _ in string.Formatter().parse(template) if name}
    objects = next(slots[name] for name in ("ger", "rel", "clause", "still") if name in slots)
    return objects + slots.get("bg", "")


def _as_prompt(words: str) -> str:
    return f"{words[:1].upper()}{words[1:]}."


def _generation_exchange(spec: PromptSpec, rng: np.random.Generator, request: str | None = None,
                         wording: Wording | None = None) -> list[dict[str, Any]]:
    """A user request for ``spec`` and the reply with its ``<video_prompt>``.

    Without ``request``, the request is worded by ``wording`` (by default the training families' mix drawing
    from a child of ``rng``) and the prompt says the objects (and background, if asked for) in the request's
    own words, which the renderer reads (:func:`~.prompts.parse_prompt`): the model learns to carry the
    user's description over, whatever the sentence around it. A given ``request`` (a change to an earlier
    video) gets the canonical caption of ``spec``."""
    groups = _groups(spec)
    choose = _rng_chooser(rng)
    prompt = None
    if request is None:
        wording = wording if wording is not None else _wording("train", rng)
        bg = f" on {spec.background.phrase()}" if spec.background is not None and rng.random() < 0.3 else ""
        template = _pick(rng, classic("generate"))
        canonical_slots = {"rel": _describe(groups, "relative", choose), "ger": _describe(groups, "gerund", choose),
                           "clause": _describe(groups, "clause", choose), "bg": bg}
        canonical = template.format(**canonical_slots)
        said = [(g.count, g.shape, g.color, g.motion) for g in groups]
        where = background_slot(spec.background.kind, spec.background.colors) if bg else ""  # type: ignore[union-attr]
        phrase = wording.say("generate", canonical, ger=objects_slot(said, "ger"), rel=objects_slot(said, "rel"),
                             clause=objects_slot(said, "clause"), bg=where)
        request = phrase.text
        prompt = _as_prompt(_said_objects(phrase, template, canonical_slots))
    reply = _pick(rng, _GENERATION_REPLIES).format(
        rel=_describe(groups, "relative", choose), ger=_describe(groups, "gerund", choose),
    )
    if prompt is None:
        prompt = caption(spec, rng)
    return [_turn("user", request), _turn("assistant", f"{reply} <video_prompt>{prompt}</video_prompt>")]


_IMAGE_REPLIES = (
    "Sure, here is a picture of {still}.",
    "Here you go: {still}.",
    "Of course! Here is an image of {still}.",
    "Okay, I drew {still}.",
)


def image_request(rng: np.random.Generator | int, *, phrasing: str = "train") -> list[dict[str, Any]]:
    """A request for a picture of a random spec of the world and the reply with its ``<image_prompt>``: the
    objects (and background, if asked for) in the request's own words, without motion."""
    g = _as_rng(rng, 0)
    wording = _wording(phrasing, g)
    spec = _random_spec(g)
    groups = _groups(spec)
    bg = f" on {spec.background.phrase()}" if g.random() < 0.4 else ""  # type: ignore[union-attr]
    template = _pick(g, classic("draw_image"))
    canonical_slots = {"still": _join([_noun_phrase(x.count, x.shape, x.color) for x in groups]), "bg": bg}
    said = [(x.count, x.shape, x.color, x.motion) for x in groups]
    where = background_slot(spec.background.kind, spec.background.colors) if bg else ""  # type: ignore[union-attr]
    phrase = wording.say("draw_image", template.format(**canonical_slots), still=objects_slot(said, "still"), bg=where)
    reply = _pick(g, _IMAGE_REPLIES).format(still=canonical_slots["still"])
    prompt = _as_prompt(_said_objects(phrase, template, canonical_slots))
    return [_turn("user", phrase.text), _turn("assistant", f"{reply} <image_prompt>{prompt}</image_prompt>")]


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


def edit_dialogue(scene: Scene, rng: np.random.Generator | int | None = None, *,
                  phrasing: str = "train") -> list[dict[str, Any]] | None:
    """A conversation about ``scene`` that asks for a changed version of it: the request attached to the clip
    itself, after a description or a question, and sometimes a second change to the video just made.

    Each change is one thing (a motion, a colour or the background) and its reply's prompt is the changed
    scene's caption, so the model learns to copy a clip's every object and change exactly the one asked for.
    Returns None when the scene offers no change (:func:`_modification` found none in a few tries)."""
    g = _as_rng(rng, scene.seed)
    wording = _wording(phrasing, g)
    change = next((c for c in (_modification(scene, g, wording) for _ in range(4)) if c is not None), None)
    if change is None:
        return None
    turns: list[dict[str, Any]] = []
    r = g.random()
    if r < 0.35:
        edit = _generation_exchange(change[1], g, change[0], wording)
        edit[0]["videos"] = [0]
        turns += edit
    else:
        if r < 0.65:
            turns += [_turn("user", wording.say("describe", _pick(g, classic("describe"))).text, [0]),
                      _turn("assistant", caption(scene, g))]
        else:
            qa = _qa_items(scene, g, wording)
            question, answer = qa[int(g.integers(len(qa)))]
            turns += [_turn("user", question.question, [0]), _turn("assistant", answer)]
        turns += _generation_exchange(change[1], g, change[0], wording)
    if g.random() < 0.3:
        again = _modification(change[1], g, wording)
        if again is not None:
            turns += _generation_exchange(again[1], g, again[0], wording)
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
