"""Grades one-word answers: normalisation and normalised exact match."""

from __future__ import annotations

import re


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
