"""Scores the harmful-request head: precision, recall and F1 of harmful vs benign, and the choice of its
per-category thresholds and of the suspicion threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .sources import HEAD_CATEGORIES, Item, label_matrix


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def choose_threshold(probs: np.ndarray, y: np.ndarray, max_fpr: float) -> tuple[float, dict[str, float]]:
    """The threshold (one for every category) with the best harmful-vs-benign F1 on these items among
    those whose benign false-positive rate is ≤ ``max_fpr``."""
    harmful = y.max(1) > 0
    top = probs.max(1)
    best: tuple[float, float, float] | None = None  # (f1, -fpr, threshold)
    for t in np.round(np.arange(0.05, 0.96, 0.01), 2):
        flagged = top >= t
        fpr = float((flagged & ~harmful).sum() / max(1, (~harmful).sum()))
        if fpr > max_fpr:
            continue
        f1 = prf(int((flagged & harmful).sum()), int((flagged & ~harmful).sum()), int((~flagged & harmful).sum()))["f1"]
        if best is None or (f1, -fpr) > best[:2]:
            best = (f1, -fpr, float(t))
    if best is None:
        return 0.95, {"f1": 0.0, "fpr": float("nan")}
    return best[2], {"f1": best[0], "fpr": round(-best[1], 4)}


def _flag_f1(probs: np.ndarray, harmful: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(F1 of harmful vs benign, benign false-positive rate) when a text is flagged as soon as some category
    reaches its threshold ``t`` (C,)."""
    flagged = (probs >= t).any(1)
    fpr = float((flagged & ~harmful).sum() / max(1, (~harmful).sum()))
    f1 = prf(int((flagged & harmful).sum()), int((flagged & ~harmful).sum()), int((~flagged & harmful).sum()))["f1"]
    return f1, fpr


def choose_category_thresholds(probs: np.ndarray, y: np.ndarray, max_fpr: float,
                               rounds: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """One threshold per category: starting from the best common one (:func:`choose_threshold`), each
    category's threshold in turn moves to the value that most improves harmful-vs-benign F1 while the
    benign false-positive rate stays ≤ ``max_fpr`` (a few rounds of coordinate ascent)."""
    common, _ = choose_threshold(probs, y, max_fpr)
    harmful = y.max(1) > 0
    t = np.full(probs.shape[1], common, dtype=np.float64)
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    best = _flag_f1(probs, harmful, t)
    for _ in range(rounds):
        for j in range(probs.shape[1]):
            for value in grid:
                trial = t.copy()
                trial[j] = value
                f1, fpr = _flag_f1(probs, harmful, trial)
                if fpr <= max_fpr and (f1, -fpr) > (best[0], -best[1]):
                    t, best = trial, (f1, fpr)
    return ({c: float(v) for c, v in zip(HEAD_CATEGORIES, t)},
            {"f1": round(best[0], 4), "fpr": round(best[1], 4), "common_start": common})


#: Candidate suspicion thresholds (:func:`choose_suspicion_threshold`).
SUSPICION_GRID = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)


def choose_suspicion_threshold(probs: np.ndarray, y: np.ndarray, max_miss: float) -> dict[str, Any]:
    """The suspicion threshold of corroborated learned refusal (:mod:`gpt4video.safety.policy`): the highest
    of :data:`SUSPICION_GRID` below which at most ``max_miss`` of the harmful items' top scores fall, so a
    learned refusal of a harmful request is almost never overridden; ``probs`` are out-of-source scores,
    lower than the shipped head gives its own training sources. Also reports the share of harmless items
    below it (whose learned refusals would be overridden)."""
    harmful = y.max(1) > 0
    top = probs.max(1)
    chosen = SUSPICION_GRID[0]
    for t in SUSPICION_GRID:
        if float((top[harmful] < t).mean()) <= max_miss:
            chosen = t
    return {"threshold": chosen, "max_harmful_below": max_miss,
            "harmful_below": round(float((top[harmful] < chosen).mean()), 4),
            "benign_below": round(float((top[~harmful] < chosen).mean()), 4),
            "n_harmful": int(harmful.sum()), "n_benign": int((~harmful).sum())}


def evaluate(probs: np.ndarray, items: Sequence[Item], thresholds: dict[str, float]) -> dict[str, Any]:
    """Held-out metrics: harmful vs benign, per category (multi-label), benign FPR and recall by source."""
    y = label_matrix(items)
    t = np.array([thresholds[c] for c in HEAD_CATEGORIES], dtype=np.float32)
    pred = probs >= t  # (N, C)
    flagged = pred.any(1)
    harmful = y.max(1) > 0
    tp, fp, fn = (int(v) for v in ((flagged & harmful).sum(), (flagged & ~harmful).sum(), (~flagged & harmful).sum()))
    overall = {**prf(tp, fp, fn), "benign_fpr": round(fp / max(1, int((~harmful).sum())), 4),
               "n_harmful": int(harmful.sum()), "n_benign": int((~harmful).sum())}
    per_category = {}
    for j, c in enumerate(HEAD_CATEGORIES):
        pos, hit = y[:, j] > 0, pred[:, j]
        m = prf(int((hit & pos).sum()), int((hit & ~pos).sum()), int((~hit & pos).sum()))
        # flagged at all (whatever the category): what matters for a refusal
        m["detected"] = round(float(flagged[pos].mean()), 4) if pos.any() else None
        m["n"] = int(pos.sum())
        per_category[c] = m
    by_source: dict[str, dict[str, Any]] = {}
    sources = sorted({it.source for it in items})
    for s in sources:
        mask = np.array([it.source == s for it in items])
        is_harm = bool(harmful[mask].any())
        rate = float(flagged[mask].mean())
        by_source[s] = {"n": int(mask.sum()), ("recall" if is_harm else "false_positive_rate"): round(rate, 4)}
    return {"overall": overall, "per_category": per_category, "by_source": by_source}


def profanity_report(benign: Sequence[str], profane: Sequence[str]) -> dict[str, Any]:
    """The packaged profanity checker on benign test texts and on rtp_profanity, at a few thresholds."""
    try:
        from profanity_check import predict_prob
    except ImportError:
        return {"unavailable": "alt-profanity-check is not installed"}
    b, p = np.asarray(predict_prob(list(benign))), np.asarray(predict_prob(list(profane)))
    return {str(t): {"benign_fpr": round(float((b >= t).mean()), 4), "rtp_profanity_flagged": round(float((p >= t).mean()), 4)}
            for t in (0.5, 0.7, 0.8, 0.9)} | {"n_benign": len(b), "n_rtp_profanity": len(p)}
