"""The assistant: a multi-turn conversation about videos, over a :class:`GPT4Video` model.

Videos are decoded (T frames sampled uniformly by seeking) and encoded once, when they are attached;
later turns reuse their features. Each reply streams as text pieces and ends with its timings.

With a :class:`~gpt4video.safety.SafetyPolicy` (paper §3.5), every question goes through:

1. ``input``: the user's message (and the last few user turns joined, so a request spread over
   turns is seen whole) and the frames of every video not checked yet. The Open-NSFW frame encoder
   records P(nsfw) of each frame while encoding it, so the frame check costs no second pass. A
   flagged input gets a polite refusal naming the category; the model and the generator are not
   called, and neither the turn nor its videos join the conversation.
2. ``model``: the model itself may refuse (learned refusal, :mod:`gpt4video.safety.refusals`). With
   the policy's ``corroborate_refusals`` on, such a refusal is honoured only when the user's text looks
   at least a little suspicious (:meth:`~gpt4video.safety.SafetyPolicy.suspicion`); otherwise it is
   overridden (logged as a ``model`` decision with outcome ``overridden``) and the model answers again,
   kept from opening its reply the way its learned non-answers open
   (:data:`~gpt4video.safety.refusals.SUPPRESSED_OPENING`). While a reply could still become an
   overridden refusal its start is held back, so the user never sees a refusal that is then taken back.
3. ``prompt``: every ``<video_prompt>`` the model writes is checked before a generator sees it; a
   blocked prompt is not rendered and the reply says why.
4. ``output``: generated frames are checked before the video is written; a flagged video is
   withheld and the reply says why.

The reply reports ``refused``, the layer that refused (``refused_by``) and every verdict
(``safety``). Without a policy (the default of this API; the CLI turns one on) nothing is checked.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import InputError
from .config import atomic_write_text
from .generators import VideoGenerator
from .modeling import GenerationParams, GenerationStream, GPT4Video
from .processing import Turn
from .routing import StreamRouter, TextDelta
from .safety.refusals import SUPPRESSED_OPENING, is_refusal, may_open_refusal, refusal_category
from .video import VideoClip, load_video, write_video

if TYPE_CHECKING:
    from .encoders import FrameScoreRecord
    from .safety import Decision, SafetyPolicy, Verdict

#: Safety layers, in the order a request meets them (``Reply.refused_by`` is one of them).
LAYERS: tuple[str, ...] = ("input", "model", "prompt", "output")
#: How many earlier user turns the input check reads together with the new message.
CONTEXT_TURNS = 3

UNTRAINED_NOTE = (
    "this model's video abstractor is untrained (no trained weights are loaded), so its answers do not "
    "reflect what is in the video"
)


@dataclass
class GeneratedVideo:
    """A clip rendered for one of the reply's video prompts."""

    prompt: str
    path: str  # the mp4
    sidecar: str  # JSON: request, prompt, backend, seed, size, timings
    backend: str
    seed: int | None
    seconds: float
    gif: str | None = None


@dataclass
class GenerationSettings:
    """How the assistant renders the video prompts it writes (paper §3.4): any backend, no retraining."""

    generator: VideoGenerator
    output_dir: str = "outputs"
    num_frames: int = 16
    height: int = 256
    width: int = 256
    seed: int | None = None
    gif: bool = False
    progress: bool = False


@dataclass
class Reply:
    """One answer. Iterate for the text to show as it is generated (video prompts are routed out of it);
    afterwards ``text``, ``video_prompts``, ``generated``, the safety fields and ``timings`` are final.

    Safety: ``refused`` is true when some layer kept the user from what they asked for, and
    ``refused_by`` names the first (``input``, ``model``, ``prompt`` or ``output``; see :data:`LAYERS`)
    with ``refusal_category``. ``video_prompts`` holds the prompts that passed the prompt check;
    ``blocked_prompts`` those that did not; ``withheld`` the prompts whose rendered video was flagged.
    ``decisions`` are the policy's decisions; :attr:`safety` flattens their verdicts.
    """

    _stream: GenerationStream
    _timings: dict[str, float]
    _on_done: object = None
    videos: list[str] = field(default_factory=list)
    request: str = ""
    video_prompts: list[str] = field(default_factory=list)
    generated: list[GeneratedVideo] = field(default_factory=list)
    generation_errors: list[str] = field(default_factory=list)
    blocked_prompts: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    refused: bool = False
    refused_by: str | None = None
    refusal_category: str | None = None
    #: The model wrote a learned refusal that was not corroborated, so it answered again (see the module docstring).
    refusal_overridden: bool = False
    decisions: list[Decision] = field(default_factory=list)
    _notices: list[str] = field(default_factory=list)
    _shown: list[str] = field(default_factory=list)
    _router: StreamRouter = field(default_factory=StreamRouter)

    def __iter__(self) -> Iterator[str]:
        for piece in self._stream:
            yield from self._route(self._router.feed(piece))
        yield from self._route(self._router.close())
        self._finish()
        for notice in self._notices:  # why a prompt was blocked or a video withheld
            piece = ("\n" if "".join(self._shown).strip() else "") + notice
            self._shown.append(piece)
            yield piece

    def refuse(self, layer: str, category: str | None) -> None:
        """Record that ``layer`` refused (the first layer to refuse is the one reported)."""
        if layer not in LAYERS:
            raise ValueError(f"unknown safety layer {layer!r}; layers: {', '.join(LAYERS)}")
        if not self.refused:
            self.refused, self.refused_by, self.refusal_category = True, layer, category

    @property
    def safety(self) -> list[dict[str, Any]]:
        """Every verdict of every stage, in the order the checks ran (see :func:`safety_rows`)."""
        return safety_rows(self.decisions)

    def safety_summary(self) -> dict[str, Any]:
        """The safety fields of this reply as JSON-ready data (for ``chat --json`` and ``predict`` rows)."""
        return {"refused": self.refused, "refused_by": self.refused_by, "refusal_category": self.refusal_category,
                "refusal_overridden": self.refusal_overridden,
                "blocked_prompts": list(self.blocked_prompts), "withheld": list(self.withheld),
                "safety": self.safety}

    def _route(self, events: list) -> Iterator[str]:  # noqa: ANN001
        for event in events:
            if isinstance(event, TextDelta):
                self._shown.append(event.text)
                yield event.text
            else:
                self.video_prompts.append(event.prompt)

    def consume(self) -> Reply:
        for _ in self:
            pass
        return self

    def _finish(self) -> None:
        if self._on_done is not None:
            done, self._on_done = self._on_done, None
            done(self)  # type: ignore[operator]

    @property
    def text(self) -> str:
        """The reply as shown to the user: video prompt tags and their content removed."""
        return "".join(self._shown)

    @property
    def raw_text(self) -> str:
        """The reply exactly as the model wrote it, tags included."""
        return self._stream.text

    @property
    def timings(self) -> dict[str, float]:
        return {**self._stream.timings, **self._timings}

    @property
    def num_generated_tokens(self) -> int:
        return self._stream.num_generated_tokens

    @property
    def num_prompt_tokens(self) -> int:
        return self._stream.num_prompt_tokens

    @property
    def finish_reason(self) -> str:
        return self._stream.finish_reason


def safety_rows(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """The verdicts of ``decisions`` as rows ``{"stage", "source", "checker", "category", "score",
    "threshold", "flagged", "reason"}`` (``source``: what the checker looked at: message,
    conversation, video, prompt)."""
    rows = []
    for decision in decisions:
        sources = decision.sources or [""] * len(decision.verdicts)
        for verdict, source in zip(decision.verdicts, sources):
            rows.append({"stage": decision.stage, "source": source, "checker": verdict.checker,
                         "category": verdict.category, "score": round(verdict.score, 6),
                         "threshold": round(verdict.threshold, 6), "flagged": verdict.flagged,
                         "reason": verdict.reason})
    return rows


class Assistant:
    """Holds a conversation: its turns and the features of every video attached so far.

    ``safety``: a :class:`~gpt4video.safety.SafetyPolicy` to check every request and every video
    made (see the module docstring); None checks nothing.
    """

    def __init__(self, model: GPT4Video, generation: GenerationSettings | None = None, *,
                 safety: SafetyPolicy | None = None) -> None:
        self.model = model
        self.generation = generation
        self.safety = safety
        self.turns: list[Turn] = []
        self.video_paths: list[str] = []
        self._features: list[torch.Tensor] = []  # one (1, T, N, D) per video
        self._pending: list[int] = []  # videos attached but not yet asked about
        # videos not yet safety-checked: index → (frames (T, H, W, 3) uint8, scores the encoder recorded)
        self._unchecked: dict[int, tuple[np.ndarray, FrameScoreRecord | None]] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], *, generation: GenerationSettings | None = None,
                        safety: SafetyPolicy | None = None, **kwargs) -> Assistant:  # noqa: ANN003
        return cls(GPT4Video.from_pretrained(name_or_path, **kwargs), generation, safety=safety)

    @property
    def notes(self) -> list[str]:
        """Things the user must know about the answers (an untrained model, for instance)."""
        return [] if self.model.trained else [UNTRAINED_NOTE]

    @property
    def checking(self) -> bool:
        """Whether a safety policy is on."""
        return self.safety is not None and self.safety.config.enabled

    def reset(self) -> None:
        self.turns.clear()
        self.video_paths.clear()
        self._features.clear()
        self._pending.clear()
        self._unchecked.clear()

    def load(self, path: str | os.PathLike[str]) -> VideoClip:
        """Decode a video the way this model samples it (checks the file; raises VideoError if bad)."""
        cfg = self.model.config
        return load_video(path, num_frames=cfg.num_frames, max_side=cfg.frame_size)

    def attach(self, videos: Sequence[str | os.PathLike[str] | VideoClip]) -> dict[str, float]:
        """Decode (paths) and encode videos now; they join the next question. Returns decode/encode seconds.

        All files are decoded before any is kept, so one bad file leaves the conversation unchanged.
        With safety on, the frames are kept (with the P(nsfw) the encoder recorded, if it records any)
        until the next question checks them.
        """
        clips = [v if isinstance(v, VideoClip) else self.load(v) for v in videos]
        t1 = time.perf_counter()
        record = None
        if clips and self.checking:
            with self.model.encoder.recording_frame_scores() as record:
                features = self.model.encode_frames([c.frames for c in clips])  # (V, T, N, D)
        else:
            features = self.model.encode_frames([c.frames for c in clips]) if clips else None  # (V, T, N, D)
        t2 = time.perf_counter()
        for i, clip in enumerate(clips):
            self.video_paths.append(str(clip.info.path))
            self._features.append(features[i : i + 1])  # type: ignore[index]
            self._pending.append(len(self.video_paths) - 1)
            if self.checking:
                self._unchecked[len(self.video_paths) - 1] = (clip.frames, _video_record(record, i, len(clips)))
        return {"decode": sum(c.seconds for c in clips), "encode": t2 - t1}

    def restore(self, history: Sequence[tuple[str, str, Sequence[str | os.PathLike[str] | VideoClip]]]) -> None:
        """Give the conversation its earlier turns without answering them again.

        ``history``: (role, text, videos) per turn, oldest first. A user turn's videos are attached and
        shown with that turn (with safety on, they are checked with the next question, like any new
        video); an assistant turn is kept as written. Videos attached before and not yet asked about join
        the first restored user turn.
        """
        for role, text, videos in history:
            if role == "user":
                if videos:
                    self.attach(videos)
                self.turns.append(Turn("user", text, videos=list(self._pending)))
                self._pending.clear()
            elif role == "assistant":
                self.turns.append(Turn("assistant", text))
            else:
                raise InputError(f"a turn's role must be 'user' or 'assistant', got {role!r}")

    def ask(
        self, text: str, videos: Sequence[str | os.PathLike[str] | VideoClip] = (),
        params: GenerationParams | None = None,
    ) -> Reply:
        """Ask a question (attaching ``videos`` first). The turn is recorded once the reply is complete."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the question is empty")
        timings = self.attach(videos) if videos else {}
        request = text.strip()
        decision = self._check_input(request, timings)
        if decision is not None and not decision.allowed:
            return self._refused_reply(decision, timings, request)
        # How suspicious the request looks, if learned refusals need corroboration (None otherwise).
        suspicion = (self.safety.suspicion(request, decision, self._context(request))  # type: ignore[union-attr]
                     if self.checking else None)
        user = Turn("user", request, videos=list(self._pending))
        turns = [*self.turns, user]
        features = torch.cat(self._features, dim=0) if self._features else None
        stream = self.model.generate_stream(turns, (), params, features=features)

        def done(reply: Reply) -> None:
            # The history keeps the reply as written (tags included), so the model sees what it asked for.
            self.turns.extend([user, Turn("assistant", reply.raw_text)])
            self._pending.clear()
            if is_refusal(reply.raw_text):  # honoured (a refusal despite the suppression is honoured too)
                category = refusal_category(reply.raw_text)
                reply.refuse("model", category)
                if self.checking:
                    reply.decisions.append(self.safety.note_model_refusal(  # type: ignore[union-attr]
                        request, reply.raw_text, category, suspicion))
            self._check_and_render(reply, request)

        reply = Reply(stream, timings, done, videos=[self.video_paths[i] for i in user.videos], request=request)
        if suspicion is not None and not suspicion.flagged:
            reply._stream = self._corroborated(reply, stream, turns, params, features, suspicion)
        if decision is not None:
            reply.decisions.append(decision)
        return reply

    def _corroborated(self, reply: Reply, first: GenerationStream, turns: list[Turn], params: GenerationParams | None,
                      features: torch.Tensor | None, suspicion: Verdict) -> GenerationStream:
        """``first``, for a request below the suspicion threshold: its start is held back while it may
        still become a learned refusal; if it does, the refusal is overridden (logged) and the model
        answers again, kept from opening with :data:`~gpt4video.safety.refusals.SUPPRESSED_OPENING`, and
        that answer is streamed instead."""
        outer = GenerationStream(iter(()))

        def pieces() -> Iterator[str]:
            held, holding = "", True
            for piece in first:
                if not holding:
                    yield piece
                    continue
                held += piece
                if not may_open_refusal(held):
                    holding = False
                    yield held
            outer.timings.update(first.timings)
            outer.num_prompt_tokens, outer.num_generated_tokens = first.num_prompt_tokens, first.num_generated_tokens
            outer.finish_reason = first.finish_reason
            if not holding or not is_refusal(held):
                if holding and held:
                    yield held
                return
            decision = self.safety.override_model_refusal(  # type: ignore[union-attr]
                reply.request, held, refusal_category(held), suspicion)
            reply.decisions.append(decision)
            reply.refusal_overridden = True
            t0 = time.perf_counter()
            tokenizer = self.model.tokenizer
            openings = tuple(ids for ids in (tuple(tokenizer.encode(form, add_special_tokens=False))
                                             for form in (SUPPRESSED_OPENING, " " + SUPPRESSED_OPENING)) if ids)
            second = self.model.generate_stream(
                turns, (), replace(params or GenerationParams(), suppress_openings=openings), features=features)
            yield from second
            outer.timings["refusal_redecode"] = time.perf_counter() - t0
            outer.num_generated_tokens += second.num_generated_tokens
            outer.finish_reason = second.finish_reason

        outer._pieces = pieces()
        return outer

    # -- safety ----------------------------------------------------------------------------------

    def _context(self, request: str) -> str | None:
        """The last :data:`CONTEXT_TURNS` user messages and this one, joined (None without history)."""
        earlier = [t.text for t in self.turns if t.role == "user"][-CONTEXT_TURNS:]
        return "\n".join([*earlier, request]) if earlier else None

    def _check_input(self, request: str, timings: dict[str, float]) -> Decision | None:
        """The input decision for ``request`` and every video not checked yet (None with safety off)."""
        if not self.checking:
            return None
        t0 = time.perf_counter()
        unchecked = sorted(self._unchecked)
        frames = [self._unchecked[i][0] for i in unchecked]
        records = [self._unchecked[i][1] for i in unchecked]
        decision = self.safety.check_input(request, frames, frame_scores=records,  # type: ignore[union-attr]
                                           context=self._context(request))
        self._unchecked.clear()
        timings["safety_input"] = time.perf_counter() - t0
        return decision

    def _refused_reply(self, decision: Decision, timings: dict[str, float], request: str) -> Reply:
        """A reply carrying the input refusal; the model is not called. The refused turn and the
        videos that came with it leave the conversation."""
        videos = [self.video_paths[i] for i in self._pending]
        for i in sorted(self._pending, reverse=True):  # pending videos are always the last ones attached
            del self.video_paths[i]
            del self._features[i]
        self._pending.clear()
        stream = GenerationStream(iter([decision.message]), finish_reason="refused")
        reply = Reply(stream, timings, videos=videos, request=request)
        reply.decisions.append(decision)
        reply.refuse("input", decision.category)
        return reply

    def _check_and_render(self, reply: Reply, request: str) -> None:
        """Check each video prompt of ``reply``; render the allowed ones (checking their frames)."""
        written = list(reply.video_prompts)
        reply.video_prompts.clear()
        t0 = time.perf_counter()
        for prompt in written:
            if self.checking:
                decision = self.safety.check_prompt(prompt)  # type: ignore[union-attr]
                reply.decisions.append(decision)
                if not decision.allowed:
                    reply.blocked_prompts.append(prompt)
                    reply._notices.append(decision.message)
                    reply.refuse("prompt", decision.category)
                    continue
            reply.video_prompts.append(prompt)
            if self.generation is None:
                continue
            try:
                video, decision = render_checked(self.generation, prompt, self.safety if self.checking else None,
                                                 request=request, model=self.model.source)
            except InputError as e:  # PromptNotSupported, or a size the backend cannot make
                reply.generation_errors.append(str(e))
                continue
            if decision is not None:
                reply.decisions.append(decision)
            if video is not None:
                reply.generated.append(video)
            else:
                reply.withheld.append(prompt)
                reply._notices.append(decision.message)  # type: ignore[union-attr]
                reply.refuse("output", decision.category)  # type: ignore[union-attr]
        if written and self.checking:
            reply._timings["safety_prompt"] = time.perf_counter() - t0
        if written and self.generation is not None:
            reply._timings["video_generation"] = time.perf_counter() - t0

    def render(self, prompt: str, *, request: str = "") -> GeneratedVideo:
        """Render one video prompt with the configured backend; writes the mp4 (and gif) plus a JSON sidecar.
        (No safety check: :func:`render_checked` is the checked path.)"""
        if self.generation is None:
            raise InputError("no video generator is configured")
        return render_prompt(self.generation, prompt, request=request, model=self.model.source)


def _video_record(record: FrameScoreRecord | None, index: int, count: int) -> FrameScoreRecord | None:
    """Video ``index``'s share of a record filled while encoding ``count`` videos of T frames each."""
    if record is None or not record.available or not record.scores or len(record.scores) % count:
        return None
    t = len(record.scores) // count
    return replace(record, scores=record.scores[index * t:(index + 1) * t])


def render_checked(g: GenerationSettings, prompt: str, safety: SafetyPolicy | None, *, request: str = "",
                   model: str = "") -> tuple[GeneratedVideo | None, Decision | None]:
    """Render ``prompt`` like :func:`render_prompt`, but check the frames before anything is written:
    returns (the video, the output decision), or (None, the decision) when the frames were flagged
    (nothing is written). The prompt itself is not checked here (the caller checks it first)."""
    t0 = time.perf_counter()
    frames = g.generator(prompt, num_frames=g.num_frames, height=g.height, width=g.width, seed=g.seed,
                         progress=g.progress)
    decision = safety.check_output(frames) if safety is not None else None
    if decision is not None and not decision.allowed:
        return None, decision
    return _write_rendered(g, prompt, frames, t0, request=request, model=model), decision


def render_prompt(g: GenerationSettings, prompt: str, *, request: str = "", model: str = "") -> GeneratedVideo:
    """Render ``prompt`` with ``g.generator`` into ``g.output_dir``: an mp4 (and gif) plus a JSON sidecar."""
    t0 = time.perf_counter()
    frames = g.generator(prompt, num_frames=g.num_frames, height=g.height, width=g.width, seed=g.seed,
                         progress=g.progress)
    return _write_rendered(g, prompt, frames, t0, request=request, model=model)


def _write_rendered(g: GenerationSettings, prompt: str, frames: Any, t0: float, *, request: str,
                    model: str) -> GeneratedVideo:
    """Write generated ``frames`` (made from ``prompt``, starting at ``t0``) as mp4 (+ gif) and sidecar."""
    t1 = time.perf_counter()
    stem = _file_stem(prompt)
    out = Path(g.output_dir)
    path = write_video(_unique(out / f"{stem}.mp4"), frames, fps=g.generator.fps)
    gif = str(write_video(path.with_suffix(".gif"), frames, fps=g.generator.fps)) if g.gif else None
    t2 = time.perf_counter()
    sidecar = path.with_suffix(".json")
    info = {"request": request, "prompt": prompt, "backend": g.generator.name, "seed": g.seed,
            "num_frames": g.num_frames, "height": g.height, "width": g.width, "fps": g.generator.fps,
            "video": path.name, "gif": Path(gif).name if gif else None,
            "model": model, "timings": {"generate": round(t1 - t0, 4), "write": round(t2 - t1, 4)}}
    atomic_write_text(sidecar, json.dumps(info, indent=2))
    return GeneratedVideo(prompt, str(path), str(sidecar), g.generator.name, g.seed, t2 - t0, gif)


def _file_stem(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())[:8]
    return time.strftime("%Y%m%d-%H%M%S") + "-" + ("-".join(words) or "video")


def _unique(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
