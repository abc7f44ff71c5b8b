"""Reads a caption or video prompt of the synthetic world back into the :class:`~.scenes.PromptSpec` the
offline renderer draws; nothing outside the world's vocabulary is guessed."""

from __future__ import annotations

import re

from gpt4video.data.phrasing import COLOR_WORDS, MOTION_ADJECTIVES, SHAPE_WORDS

from .backgrounds import Background, _parse_background_words, contrast
from .scenes import ObjectSpec, PromptSpec
from .vocabulary import BACKGROUND_COLORS, COLOR_RGB, COLORS, COUNTS, MIN_CONTRAST, _tokens


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
# Words of a background phrase.
_BACKGROUND_WORDS = frozenset(w for name in BACKGROUND_COLORS for w in name.split()) | {
    "to", "and", "gradient", "noisy", "grainy", "light",
}


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
