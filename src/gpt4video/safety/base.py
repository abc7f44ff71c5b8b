"""Safety checkers: the verdict they return, their common interface and their registry.

A checker looks at one kind of content, text (a user message or a video prompt) or frames (a user
video or a generated one), and returns a :class:`Verdict`: whether it is flagged, for which
category, the score that decided it, the threshold it was compared with, and the checker's name.
The :class:`~gpt4video.safety.policy.SafetyPolicy` runs the checkers a config enables at each stage
and turns their verdicts into a decision.

Checkers are registered by name in :data:`CHECKERS` and built with keyword options
(``CHECKERS.get("open_nsfw")(threshold=0.9)``). Building a checker loads nothing: models are
loaded on first use (or by :meth:`SafetyChecker.load`) and then kept for every later call.
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..registry import Registry

#: The harm categories every checker reports in (a checker may cover only some of them).
#: weapons covers weapons and other dangerous goods or activities; hate covers harassment and
#: bullying; illegal covers crimes that are none of the others (theft, drugs, hacking, ...);
#: deception covers fraud, scams, phishing, disinformation and defamation.
CATEGORIES: tuple[str, ...] = (
    "sexual", "violence", "self_harm", "weapons", "hate", "illegal", "deception", "profanity",
)

#: How each category is named in a message to the user.
CATEGORY_LABELS: dict[str, str] = {
    "sexual": "sexual content",
    "violence": "violence or gore",
    "self_harm": "self-harm",
    "weapons": "weapons or dangerous goods",
    "hate": "hate or harassment",
    "illegal": "illegal activity",
    "deception": "deception or fraud",
    "profanity": "profanity",
}


def category_label(category: str | None) -> str:
    """The user-facing name of ``category`` ("unsafe content" when there is none)."""
    if category is None:
        return "unsafe content"
    return CATEGORY_LABELS.get(category, category.replace("_", " "))


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Verdict:
    """What one checker decided about one piece of content.

    flagged: whether the content passed the threshold of some category.
    category: the flagged category; when nothing is flagged, the category that came closest to its
        threshold (``None`` when the checker has no categories, e.g. an unparseable guard output).
    score: that category's score (a probability in [0, 1]); threshold: what it was compared with
        (flagged ⇔ score ≥ threshold).
    checker: the checker's registry name. reason: one human-readable line.
    details: checker-specific extras (all category scores, per-frame scores, raw guard output, ...),
        JSON-serialisable.
    """

    flagged: bool
    category: str | None
    score: float
    threshold: float
    checker: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.flagged = bool(self.flagged)
        self.score = float(self.score)
        self.threshold = float(self.threshold)
        if not self.reason:
            relation = "≥" if self.flagged else "<"
            what = self.category or "unsafe"
            self.reason = f"{self.checker}: {what} {self.score:.2f} {relation} {self.threshold:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "category": self.category,
            "score": _jsonable(self.score),
            "threshold": _jsonable(self.threshold),
            "checker": self.checker,
            "reason": self.reason,
            "details": _jsonable(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            flagged=bool(data["flagged"]), category=data.get("category"), score=float(data["score"]),
            threshold=float(data["threshold"]), checker=str(data["checker"]), reason=str(data.get("reason", "")),
            details=dict(data.get("details") or {}),
        )


def verdict_from_scores(
    checker: str, scores: Mapping[str, float], thresholds: Mapping[str, float], *, details: dict[str, Any] | None = None,
) -> Verdict:
    """The verdict for per-category ``scores`` against per-category ``thresholds``.

    Flagged when any category reaches its threshold. The reported category is the one with the
    largest ``score - threshold`` (among the flagged ones when any is flagged), so a verdict names the
    clearest violation, or otherwise the nearest miss. ``details["scores"]`` holds every score.
    """
    if not scores:
        raise ValueError(f"{checker}: no category scores to decide on")
    margins = {c: float(scores[c]) - float(thresholds[c]) for c in scores}
    category = max(margins, key=lambda c: (margins[c], scores[c]))
    flagged = margins[category] >= 0.0
    extra = {"scores": {c: float(s) for c, s in scores.items()}}
    extra.update(details or {})
    return Verdict(flagged, category, float(scores[category]), float(thresholds[category]), checker, details=extra)


def check_probability(checker: str, what: str, value: Any) -> float:
    """``value`` as a float in [0, 1], or a ConfigError naming ``checker`` and ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{checker}: {what} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_thresholds(checker: str, thresholds: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, float]:
    """Validated per-category threshold overrides: known categories of this checker, values in [0, 1]."""
    out: dict[str, float] = {}
    for category, value in dict(thresholds or {}).items():
        if category not in allowed:
            raise ConfigError(
                f"{checker}: threshold for unknown category {category!r}; this checker reports: {', '.join(allowed)}")
        out[category] = check_probability(checker, f"threshold of {category!r}", value)
    return out


def as_frames(frames: Any) -> np.ndarray:
    """``frames`` as a ``(T, H, W, 3)`` uint8 numpy array (from numpy, torch or a list of HxWx3 arrays)."""
    if hasattr(frames, "detach") and hasattr(frames, "cpu"):  # a torch tensor
        frames = frames.detach().cpu().numpy()
    elif isinstance(frames, (list, tuple)):
        frames = np.stack([np.asarray(f) for f in frames]) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    array = np.asarray(frames)
    if array.ndim == 3 and array.shape[-1] == 3:
        array = array[None]  # a single image: (H, W, 3) → (1, H, W, 3)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise InputError(f"frames must have shape (T, H, W, 3), got {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise InputError("frames: got an empty video (0 frames)")
    if array.dtype != np.uint8:
        raise InputError(f"frames must be uint8 (0-255 RGB), got {array.dtype}")
    return array


class SafetyChecker(ABC):
    """A checker of text or of frames.

    Subclasses set ``name`` (their registry name) and ``kind`` (``"text"`` or ``"frames"``) and
    implement :meth:`check_text` or :meth:`check_frames`; batch versions default to a loop and are
    overridden where a model can batch. :meth:`load` loads the models now (otherwise the first check
    does), so a server can pay that cost at start-up.
    """

    name: str = ""
    kind: str = ""  # "text" | "frames"
    #: The categories this checker can report.
    categories: tuple[str, ...] = ()

    def load(self) -> SafetyChecker:
        """Load the models now (no-op for checkers without any). Returns ``self``."""
        return self

    def check_text(self, text: str) -> Verdict:
        raise NotImplementedError(f"the {self.name!r} checker does not check text (it checks {self.kind})")

    def check_texts(self, texts: list[str]) -> list[Verdict]:
        return [self.check_text(t) for t in texts]

    def check_prompt_text(self, text: str) -> Verdict:
        """The verdict on a video or image prompt the model wrote. The same as :meth:`check_text` unless the
        checker keeps separate thresholds for prompts (the ``harmful_request`` head may: its prompts are
        descriptions, not requests)."""
        return self.check_text(text)

    def check_frames(self, frames: Any) -> Verdict:
        raise NotImplementedError(f"the {self.name!r} checker does not check frames (it checks {self.kind})")

    def check_recorded(self, record: Any) -> Verdict | None:
        """The verdict from per-frame scores a frame encoder already computed while encoding the video
        (a :class:`~gpt4video.encoders.FrameScoreRecord`), or None when this checker cannot use them
        (other network, other kind of score, none recorded): the caller then runs :meth:`check_frames`."""
        return None

    def check(self, content: Any) -> Verdict:
        """:meth:`check_text` or :meth:`check_frames`, by this checker's kind."""
        return self.check_text(content) if self.kind == "text" else self.check_frames(content)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r})"


#: Safety checkers by name: text ("profanity", "harmful_request", "llama_guard") and frames
#: ("open_nsfw", "shieldgemma"). Values are classes taking keyword options.
CHECKERS: Registry[type[SafetyChecker]] = Registry("safety checker")
