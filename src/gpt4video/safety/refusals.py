"""The refusal the model is taught to write (learned refusal, paper §3.5), and how to recognise it.

Stage-2 safety dialogues (:mod:`gpt4video.safety.dialogues`) answer every harmful request with one
fixed sentence per category, so the model learns it word for word and the pipeline can tell a
refusal the model wrote from an ordinary answer (:func:`refusal_category`), and report it as the
``model`` layer. The checkers' own refusals (:func:`gpt4video.safety.policy.refusal`) are worded
differently ("Sorry, I can't help with that: your message was flagged as ..."), so the two layers
never get mixed up.

This module loads nothing and imports no model code.
"""

from __future__ import annotations

import re

from .base import CATEGORY_LABELS

#: The categories the model learns to refuse (those of the harmful-request classifier).
REFUSAL_CATEGORIES: tuple[str, ...] = ("sexual", "violence", "self_harm", "weapons", "hate", "illegal", "deception")

_PREFIX = "I'm sorry, but I can't help with that because it involves"

#: The one sentence the model writes to refuse a request of each category.
REFUSALS: dict[str, str] = {c: f"{_PREFIX} {CATEGORY_LABELS[c]}." for c in REFUSAL_CATEGORIES}

_LABEL_TO_CATEGORY = {CATEGORY_LABELS[c].lower(): c for c in REFUSAL_CATEGORIES}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
#: The fixed opening, matched case-insensitively with any spacing and either apostrophe.
_OPENING = re.compile(r"i'm sorry,? but i can(?:'|no)t help with that\b", re.IGNORECASE)
_INVOLVES = re.compile(r"because it involves ([a-z ,\-]+?)\s*[.!]", re.IGNORECASE)


def refusal_text(category: str) -> str:
    """The model's refusal sentence for ``category`` (one of :data:`REFUSAL_CATEGORIES`)."""
    if category not in REFUSALS:
        raise ValueError(f"no refusal for category {category!r}; known: {', '.join(REFUSAL_CATEGORIES)}")
    return REFUSALS[category]


def _normalise(text: str) -> str:
    return " ".join(text.translate(_APOSTROPHES).split())


def is_refusal(text: str) -> bool:
    """Whether ``text`` (a reply as the model wrote it) opens with the learned refusal."""
    return bool(_OPENING.match(_normalise(text or "")))


#: The opening every learned refusal starts with, in the forms :func:`is_refusal` accepts.
_OPENINGS: tuple[str, ...] = tuple(f"i'm sorry{comma} but i {cannot} help with that"
                                   for comma in (",", "") for cannot in ("can't", "cannot"))
#: The word a new answer may not open with when a learned refusal is overridden. Both learned non-answers
#: open with it: the refusal ("I'm sorry, but ...") and the safety dialogues' scope reply ("I can only help
#: with videos ..."), which is what the shipped model wrote instead of a video for every overridden
#: generation request when only "I'm" was suppressed; helpful replies in the training data open otherwise
#: ("Sure, ...", "Here you go: ...", an answer).
SUPPRESSED_OPENING = "I"


def may_open_refusal(text: str) -> bool:
    """Whether a reply that starts with ``text`` (so far) may still turn out to be a learned refusal:
    ``text`` is a start of the refusal's opening (the empty text too), or already a refusal."""
    normal = _normalise(text or "").lower()
    return any(o.startswith(normal) for o in _OPENINGS) or is_refusal(normal)


def refusal_category(text: str) -> str | None:
    """The category a learned refusal names ("violence" for "... it involves violence or gore."), or
    None when ``text`` is no refusal or names no known category."""
    normal = _normalise(text or "")
    if not _OPENING.match(normal):
        return None
    found = _INVOLVES.search(normal)
    return _LABEL_TO_CATEGORY.get(found.group(1).lower()) if found else None
