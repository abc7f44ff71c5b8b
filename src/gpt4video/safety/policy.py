"""The safety policy: which checkers run at each stage, their thresholds, and the audit log.

Three stages (paper §3.5):

- ``input``: the user's text and the frames of the user's videos, before the LLM answers;
- ``prompt``: every ``<video_prompt>`` and ``<image_prompt>`` the LLM writes, before a generator renders it;
- ``output``: the generated frames (of a video, or the one frame of an image), before they are shown.

Image prompts and images meet the same checkers and thresholds as video prompts and videos; only the
refusal says "image" (``media="image"`` in :meth:`SafetyPolicy.check_prompt` and :meth:`SafetyPolicy.check_output`).

A fourth kind of decision is not a check: ``model``, when the model itself wrote a refusal (learned
refusal, :mod:`gpt4video.safety.refusals`); :meth:`SafetyPolicy.note_model_refusal` logs it.

Corroborated learned refusal (``corroborate_refusals``): the model's own refusals are sometimes wrong
(it refused "bridge" asked as a video request). With corroboration on, a refusal the model writes is
honoured only when the ``suspicion_checker``'s score of the user's text (its highest category score,
over the message and the recent conversation) reaches ``suspicion_threshold`` (default 0.80: chosen with the
packaged head's thresholds by :mod:`gpt4video.safety.calibrate` from what the whole pipeline does on a
validation source, independent sets 10 and 11, which no training source holds; the head's training script also
proposes one on its cross-source folds, ``training.suspicion_threshold`` (0.005 for the packaged head),
which overrides almost nothing). Below it, the refusal is *overridden*: the decision (stage ``model``, outcome
``overridden``, allowed, with the refusal's category and text and the suspicion verdict) is logged
and the assistant answers again, kept from opening its reply the way the learned non-answers open
(:data:`~gpt4video.safety.refusals.SUPPRESSED_OPENING`). Honoured refusals are logged with outcome
``honoured`` and the same verdict.

Each check returns a :class:`Decision`: allowed or not, every checker's :class:`Verdict`, the
category of the clearest violation and a polite refusal naming it. With ``audit_log`` set, every
decision is appended to a JSONL file, one line per decision, written with a single ``write`` on a
file opened for appending (so concurrent writers never interleave within a line). The log holds
SHA-256 hashes of the text and frames, not the content, unless ``log_text`` is true.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import ConfigBase, Flag, Name, Probability, config_class
from ..errors import ConfigError
from ..jsonl import read_jsonl
from . import frames as _frames  # noqa: F401 - registers open_nsfw
from . import guards as _guards  # noqa: F401 - registers llama_guard, shieldgemma
from . import text as _text  # noqa: F401 - registers profanity, harmful_request
from .base import CATEGORIES, CHECKERS, SafetyChecker, Verdict, as_frames, category_label
from .layers import INPUT, MODEL, OUTPUT, PROMPT
from .refusals import is_refusal, refusal_category

#: Whether learned refusals need corroboration unless the config says otherwise (see the module docstring).
DEFAULT_CORROBORATE = True
#: The default ``suspicion_threshold``: the packaged head's calibration (``calibration.suspicion_threshold`` in
#: ``harmful_request.json``, chosen by ``python -m gpt4video.safety.calibrate`` with the head's thresholds).
DEFAULT_SUSPICION_THRESHOLD = 0.8
#: Outcomes of a ``model`` decision with corroboration on.
HONOURED, OVERRIDDEN = "honoured", "overridden"


@config_class
class SafetyConfig(ConfigBase):
    """Safety settings.

    enabled: false turns every check into "allowed" (nothing is run or logged).
    input_text / input_frames: checkers of the user's message and of the user's videos.
    prompt: checkers of each video or image prompt the model writes. output_frames: checkers of generated frames
        (videos and images).
    thresholds: per checker, per category: ``{"harmful_request": {"violence": 0.6}, "open_nsfw": {"sexual": 0.9}}``
        (a checker's scores have their own scale, so thresholds are set per checker).
    prompt_thresholds: the same, for the prompts the model writes, where a checker keeps them apart
        (``harmful_request``: a prompt is a description, not a request, so its scores sit elsewhere);
        unset categories keep the checker's own prompt thresholds.
    checker_options: per checker, keyword options: ``{"open_nsfw": {"k": 2, "max_frames": 8},
        "llama_guard": {"model": "/models/Llama-Guard-3-1B"}}``.
    audit_log: a JSONL file every decision is appended to, or null for none.
    log_text: also write the checked text into the audit log (default: only its SHA-256).
    corroborate_refusals: honour a refusal the model writes itself only when the user's text looks at
        least a little suspicious (see the module docstring); otherwise answer again without it.
    suspicion_checker: the text checker whose score corroborates a learned refusal (its highest
        category score; the ``input`` stage's verdict is reused when that stage ran it).
    suspicion_threshold: the score the user's text must reach for a learned refusal to be honoured
        (not a flagging threshold; see the module docstring for how the default was chosen).
    """

    enabled: Flag = True
    input_text: list[Name] = field(default_factory=lambda: ["profanity", "harmful_request"])
    input_frames: list[Name] = field(default_factory=lambda: ["open_nsfw"])
    prompt: list[Name] = field(default_factory=lambda: ["profanity", "harmful_request"])
    output_frames: list[Name] = field(default_factory=lambda: ["open_nsfw"])
    thresholds: dict[str, dict[str, Probability]] = field(default_factory=dict)
    prompt_thresholds: dict[str, dict[str, Probability]] = field(default_factory=dict)
    checker_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit_log: Name | None = None
    log_text: Flag = False
    corroborate_refusals: Flag = DEFAULT_CORROBORATE
    suspicion_checker: Name = "harmful_request"
    suspicion_threshold: Probability = DEFAULT_SUSPICION_THRESHOLD

    def __post_init__(self) -> None:
        if CHECKERS.get(self.suspicion_checker).kind != "text":
            raise ConfigError(f"suspicion_checker: {self.suspicion_checker!r} does not check text")
        for name, kind in (("input_text", "text"), ("prompt", "text"), ("input_frames", "frames"),
                           ("output_frames", "frames")):
            for checker in getattr(self, name):
                actual = CHECKERS.get(checker).kind  # raises ConfigError listing the known names
                if actual != kind:
                    raise ConfigError(f"{name}: {checker!r} checks {actual}, not {kind}")
        for key in ("thresholds", "prompt_thresholds"):
            for checker, per_category in getattr(self, key).items():
                CHECKERS.get(checker)
                for category in per_category:
                    if category not in CATEGORIES:
                        raise ConfigError(f"{key}.{checker}: unknown category {category!r}; "
                                          f"known: {', '.join(CATEGORIES)}")
        for checker in self.prompt_thresholds:
            if "prompt_thresholds" not in inspect.signature(CHECKERS.get(checker)).parameters:
                raise ConfigError(f"prompt_thresholds.{checker}: this checker keeps no separate prompt thresholds "
                                  "(set them in thresholds)")
        for checker, options in self.checker_options.items():
            CHECKERS.get(checker)
            for key in ("thresholds", "prompt_thresholds"):
                if key in options:
                    raise ConfigError(f"checker_options.{checker}: set {key} in {key}")


@dataclass
class Decision:
    """The outcome of one stage's checks.

    allowed: no checker flagged the content. stage: the layer (:data:`~gpt4video.safety.layers.LAYERS`). verdicts: every
    checker's verdict, in the order they ran (``sources``: what each looked at). category: the category of the clearest violation
    (largest score above its threshold), None when allowed. message: a polite refusal naming the
    category and the evidence, "" when allowed.
    """

    allowed: bool
    stage: str
    verdicts: list[Verdict] = field(default_factory=list)
    category: str | None = None
    message: str = ""
    #: What each verdict looked at ("message", "conversation", "video", "video 2", "video's speech", "prompt"), in
    #: order.
    sources: list[str] = field(default_factory=list)
    #: Stage ``model`` with corroboration on: ``honoured`` (the refusal stands; not allowed) or
    #: ``overridden`` (allowed; ``category`` and ``message`` are those of the refusal the model wrote and
    #: that was not honoured). None otherwise.
    outcome: str | None = None

    @property
    def flagged(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.flagged]

    def to_dict(self) -> dict[str, Any]:
        out = {"allowed": self.allowed, "stage": self.stage, "category": self.category, "message": self.message,
               "verdicts": [v.to_dict() for v in self.verdicts], "sources": list(self.sources)}
        if self.outcome is not None:
            out["outcome"] = self.outcome
        return out


def evidence(verdict: Verdict) -> str:
    """A short account of why ``verdict`` flagged: ``harmful_request 0.93 ≥ 0.50`` or
    ``open_nsfw: 3 of 4 frames ≥ 0.80``."""
    d = verdict.details
    if "frames_over" in d and "n" in d:
        return f"{verdict.checker}: {d['frames_over']} of {d['n']} frames ≥ {verdict.threshold:.2f}"
    if verdict.category is None:
        return verdict.reason or verdict.checker
    return f"{verdict.checker} {verdict.score:.2f} ≥ {verdict.threshold:.2f}"


#: What a generator makes: a prompt or frames are checked for one of these.
MEDIA: tuple[str, ...] = ("video", "image")


def refusal(stage: str, verdict: Verdict, *, what: str = "message", media: str = "video") -> str:
    """The polite refusal for a flagged ``verdict`` at ``stage`` (``media``: what the prompt or frames were for)."""
    label = category_label(verdict.category)
    why = evidence(verdict)
    if stage == INPUT:
        return f"Sorry, I can't help with that: your {what} was flagged as {label} ({why})."
    if stage == PROMPT:
        return f"Sorry, I can't make that {media}: its description was flagged as {label} ({why})."
    return f"Sorry, I can't show the {media} I made: it was flagged as {label} ({why})."


def _decide(stage: str, verdicts: list[Verdict], sources: list[str], media: str = "video") -> Decision:
    flagged = [(v, s) for v, s in zip(verdicts, sources) if v.flagged]
    if not flagged:
        return Decision(True, stage, verdicts, sources=list(sources))
    verdict, source = max(flagged, key=lambda vs: vs[0].score - vs[0].threshold)
    message = refusal(stage, verdict, what=source, media=media)
    return Decision(False, stage, verdicts, verdict.category, message, list(sources))


def _check_media(media: str) -> str:
    if media not in MEDIA:
        raise ValueError(f"media must be one of {', '.join(MEDIA)}, got {media!r}")
    return media


class AuditLog:
    """Appends one JSON object per line to ``path``; each line is one ``os.write`` on an O_APPEND file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:  # a regular file takes it in one write; loop only for the pathological case
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """Every record (for tests and tools)."""
        if not self.path.is_file():
            return []
        return list(read_jsonl(self.path, what="audit record"))


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _frames_record(frames: Any) -> dict[str, Any]:
    array = as_frames(frames)
    return {"sha256": hashlib.sha256(array.tobytes()).hexdigest(), "shape": list(array.shape)}


class SafetyPolicy:
    """Runs the checkers a :class:`SafetyConfig` enables, stage by stage.

    Checkers are built once (on first use, or by :meth:`load`) and shared by the stages that name
    them. ``device`` is passed to checkers that take one. ``checkers`` gives ready instances by name
    (they win over building from the registry; tests use it to inject stubs).
    """

    def __init__(self, config: SafetyConfig | None = None, *, device: str = "cpu",
                 checkers: Mapping[str, SafetyChecker] | None = None) -> None:
        self.config = config if config is not None else SafetyConfig()
        self.device = device
        self._checkers: dict[str, SafetyChecker] = dict(checkers or {})
        self._lock = threading.Lock()
        self.audit = AuditLog(self.config.audit_log) if self.config.audit_log else None

    # -- checkers ----------------------------------------------------------------------------

    def checker(self, name: str) -> SafetyChecker:
        """The checker ``name``, built with its configured options and thresholds on first use."""
        if name not in self._checkers:
            with self._lock:
                if name not in self._checkers:
                    cls = CHECKERS.get(name)
                    options = dict(self.config.checker_options.get(name, {}))
                    if name in self.config.thresholds:
                        options["thresholds"] = dict(self.config.thresholds[name])
                    if name in self.config.prompt_thresholds:
                        options["prompt_thresholds"] = dict(self.config.prompt_thresholds[name])
                    if "device" in inspect.signature(cls).parameters and "device" not in options:
                        options["device"] = self.device
                    try:
                        self._checkers[name] = cls(**options)
                    except TypeError as e:
                        raise ConfigError(f"safety.checker_options.{name}: {e}") from None
        return self._checkers[name]

    def enabled_checkers(self) -> list[str]:
        c = self.config
        suspicion = [c.suspicion_checker] if c.corroborate_refusals else []
        return list(dict.fromkeys(c.input_text + c.input_frames + c.prompt + c.output_frames + suspicion))

    def load(self) -> SafetyPolicy:
        """Build and load every enabled checker now (a server calls this at start-up)."""
        if self.config.enabled:
            for name in self.enabled_checkers():
                self.checker(name).load()
        return self

    # -- stages ------------------------------------------------------------------------------

    def check_input(self, text: str | None = None, frames_list: Iterable[Any] = (), *,
                    frame_scores: Sequence[Any] | None = None, context: str | None = None,
                    speech: Sequence[tuple[str, str]] = ()) -> Decision:
        """Check the user's message and the frames of each of their videos (``(T, H, W, 3)`` uint8).

        frame_scores: per video, the :class:`~gpt4video.encoders.FrameScoreRecord` its frame encoder
            filled while encoding it (or None); a frame checker that can use it judges the video from
            it (:meth:`~gpt4video.safety.base.SafetyChecker.check_recorded`) instead of its own pass.
        context: the recent conversation (earlier user messages and this one, joined): checked by the
            same text checkers alongside the message, so a request spread over several turns is seen
            whole. Its verdicts are reported with source ``conversation``.
        speech: (source, words) per video or audio file whose speech the user brings (e.g. ``("video's
            speech", "look at it go")``): the words are checked by the same text checkers, apart from the
            message, and their verdicts carry that source. What is said in a video can ask for harm as
            much as what is typed; the subtitles line's own form is not part of it.
        """
        videos = list(frames_list or [])
        records = list(frame_scores) if frame_scores is not None else [None] * len(videos)
        if len(records) != len(videos):
            raise ValueError(f"check_input: {len(records)} frame score records for {len(videos)} videos")
        if not self.config.enabled:
            return Decision(True, INPUT)
        verdicts: list[Verdict] = []
        sources: list[str] = []
        texts = [(text, "message")] if text is not None and text.strip() else []
        if context is not None and context.strip() and context.strip() != (text or "").strip():
            texts.append((context, "conversation"))
        texts += [(words, source) for source, words in speech if words.strip()]
        if texts:
            for name in self.config.input_text:
                verdicts += self.checker(name).check_texts([t for t, _ in texts])
                sources += [what for _, what in texts]
        for i, (frames, record) in enumerate(zip(videos, records)):
            for name in self.config.input_frames:
                checker = self.checker(name)
                verdict = checker.check_recorded(record) if record is not None else None
                verdicts.append(verdict if verdict is not None else checker.check_frames(frames))
                sources.append("video" if len(videos) == 1 else f"video {i + 1}")
        decision = _decide(INPUT, verdicts, sources)
        self._log(decision, text=text, videos=videos, context=context)
        return decision

    def check_prompt(self, prompt: str, *, media: str = "video") -> Decision:
        """Check a video (or, with ``media="image"``, an image) prompt the model wrote, before any generator sees it."""
        _check_media(media)
        if not self.config.enabled:
            return Decision(True, PROMPT)
        names = self.config.prompt if prompt.strip() else []
        verdicts = [self.checker(name).check_prompt_text(prompt) for name in names]
        decision = _decide(PROMPT, verdicts, ["prompt"] * len(verdicts), media)
        self._log(decision, text=prompt, videos=[])
        return decision

    def check_output(self, frames: Any, *, media: str = "video") -> Decision:
        """Check generated frames before they are shown: a video's ``(T, H, W, 3)``, or with ``media="image"`` an
        image's ``(H, W, 3)``."""
        _check_media(media)
        if not self.config.enabled:
            return Decision(True, OUTPUT)
        verdicts = [self.checker(name).check_frames(frames) for name in self.config.output_frames]
        decision = _decide(OUTPUT, verdicts, [media] * len(verdicts), media)
        self._log(decision, text=None, videos=[frames])
        return decision

    def check_model_reply(self, request: str, reply: str, suspicion: Verdict | None = None) -> Decision | None:
        """The ``model`` layer's hook, after the model answered ``request``: None when ``reply`` is no learned
        refusal; otherwise the honoured refusal's decision (:meth:`note_model_refusal`). (A refusal that
        corroboration overrides never reaches here: :meth:`override_model_refusal` logs it and the model
        answers again.)"""
        if not is_refusal(reply):
            return None
        return self.note_model_refusal(request, reply, refusal_category(reply), suspicion)

    def note_model_refusal(self, request: str, reply: str, category: str | None,
                           suspicion: Verdict | None = None) -> Decision:
        """The decision (and its audit record) for a reply in which the model itself refused ``request``
        (learned refusal, stage ``model``), honoured: ``reply`` is the refusal it wrote; ``suspicion`` the
        verdict that corroborated it (:meth:`suspicion`), None when corroboration is off."""
        verdicts, sources = ([suspicion], ["message"]) if suspicion is not None else ([], [])
        decision = Decision(False, MODEL, verdicts, category, reply, sources,
                            outcome=HONOURED if suspicion is not None else None)
        if self.config.enabled:
            self._log(decision, text=request, videos=[])
        return decision

    def override_model_refusal(self, request: str, reply: str, category: str | None, suspicion: Verdict) -> Decision:
        """The decision (and its audit record) for a learned refusal that is not honoured because
        ``suspicion`` (:meth:`suspicion`) is below the suspicion threshold: allowed, outcome ``overridden``,
        with the category and text of the refusal the model wrote."""
        decision = Decision(True, MODEL, [suspicion], category, reply, ["message"], outcome=OVERRIDDEN)
        if self.config.enabled:
            self._log(decision, text=request, videos=[])
        return decision

    @property
    def corroborating(self) -> bool:
        """Whether learned refusals need corroboration (policy enabled and ``corroborate_refusals``)."""
        return self.config.enabled and self.config.corroborate_refusals

    def suspicion(self, text: str, input_decision: Decision | None = None, context: str | None = None) -> Verdict | None:
        """How suspicious the user's ``text`` (and the recent ``context``) looks to the suspicion checker:
        a verdict whose score is the checker's highest category score, flagged when it reaches
        ``suspicion_threshold``. The ``input`` stage's verdicts of that checker are reused when it ran
        it (``input_decision``); otherwise the checker is run here. None when corroboration is off."""
        if not self.corroborating:
            return None
        name = self.config.suspicion_checker
        found: list[Verdict] = []
        if input_decision is not None:
            found = [v for v in input_decision.verdicts if v.checker == name]
        if not found:
            texts = [t for t in (text, context) if t is not None and t.strip()]
            found = self.checker(name).check_texts(texts) if texts else []
        best_category, best = None, 0.0
        for verdict in found:
            scores = verdict.details.get("scores") or ({verdict.category: verdict.score} if verdict.category else {})
            for category, score in scores.items():
                if float(score) > best or best_category is None:
                    best_category, best = category, float(score)
        threshold = self.config.suspicion_threshold
        flagged = best >= threshold
        relation = "≥" if flagged else "<"
        return Verdict(flagged, best_category, best, threshold, name,
                       reason=f"suspicion: {name} {best:.3f} {relation} {threshold:.3f}",
                       details={"purpose": "corroborates a learned refusal"})

    # -- audit -------------------------------------------------------------------------------

    def _log(self, decision: Decision, *, text: str | None, videos: list[Any], context: str | None = None) -> None:
        if self.audit is None:
            return
        record: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "stage": decision.stage,
            "allowed": decision.allowed,
            "category": decision.category,
            "message": decision.message,
            "verdicts": [v.to_dict() for v in decision.verdicts],
        }
        if decision.outcome is not None:
            record["outcome"] = decision.outcome
        if text is not None:
            record["text_sha256"] = _sha256_text(text)
            record["text_chars"] = len(text)
            if self.config.log_text:
                record["text"] = text
        if context is not None and context.strip():
            record["context_sha256"] = _sha256_text(context)
            if self.config.log_text:
                record["context"] = context
        if videos:
            record["videos"] = [_frames_record(f) for f in videos]
        self.audit.write(record)
