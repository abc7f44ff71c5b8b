"""The assistant: a multi-turn conversation about videos, over a :class:`GPT4Video` model.

One contract: :meth:`Assistant.ask` takes the next message (and its videos) and returns a :class:`Reply`,
which streams typed events while the answer is made —

- :class:`~gpt4video.routing.TextDelta`: text to show;
- :class:`~gpt4video.routing.VideoPrompt` / :class:`~gpt4video.routing.ImagePrompt`: a ``<video_prompt>`` /
  ``<image_prompt>`` the model wrote (before any check);
- :class:`SafetyDecision`: one safety layer's decision;
- :class:`VideoGenerated` / :class:`ImageGenerated`: a video / an image rendered for an allowed prompt (pixels
  and metadata, nothing written);
- :class:`Done`: the finished :class:`ReplyOutput` —

and ends in one plain :class:`ReplyOutput` (text, video prompts, generated videos, every safety verdict,
refused / refused_by, timings) whose :meth:`~ReplyOutput.to_dict` is the one serialisation of a reply (the
CLI's ``--json``, ``predict`` rows, the API's safety fields, the safety benchmark's rows). Callers decide how to print, write or store
it: :meth:`GeneratedVideo.save` writes a generated video with its JSON sidecar, :meth:`GeneratedImage.save` a PNG.

Videos are decoded by the model's processor (T frames sampled uniformly by seeking) and encoded once,
when they are attached; later turns reuse their features.

With a :class:`~gpt4video.safety.SafetyPolicy` (paper §3.5) every message meets the four layers of
:mod:`gpt4video.safety.layers`, each through one hook of the policy:

1. ``input`` (:meth:`~gpt4video.safety.SafetyPolicy.check_input`): the message (and the last few user turns
   joined, so a request spread over turns is seen whole), the words said in each video and audio file heard
   since the last question, checked apart from the message, and the frames of every video not checked yet.
   The Open-NSFW frame encoder records P(nsfw) of each frame while encoding it, so the frame check costs
   no second pass. A flagged input gets a polite refusal naming the category; the model and the
   generator are not called, and neither the turn nor its videos join the conversation.
2. ``model`` (:meth:`~gpt4video.safety.SafetyPolicy.check_model_reply`): the model itself may refuse
   (learned refusal). With ``corroborate_refusals`` on, decoding runs through :meth:`Assistant._decode`, the
   corroboration step: a refusal is honoured only when the message looks at least a little suspicious
   (:meth:`~gpt4video.safety.SafetyPolicy.suspicion`); otherwise it is overridden (a ``model`` decision with
   outcome ``overridden``) and the model answers again, kept from opening its reply the way its learned
   non-answers open (:data:`~gpt4video.safety.refusals.SUPPRESSED_OPENING`). While a reply could still
   become an overridden refusal its start is held back, so the user never sees a refusal taken back.
3. ``prompt`` (:meth:`~gpt4video.safety.SafetyPolicy.check_prompt`): every video and image prompt the model
   writes, before a generator sees it; a blocked prompt is not rendered and the reply says why.
4. ``output`` (:meth:`~gpt4video.safety.SafetyPolicy.check_output`): generated frames, before the video or image
   is handed out; a flagged one is withheld and the reply says why.

:func:`render_video_prompt` and :func:`render_image_prompt` run layers 3 and 4 around one render;
``gpt4video generate --direct`` uses the first too. Without a policy (the default of this API; the CLI turns
one on) nothing is checked.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .audio import AudioTrack, load_audio, name_source, spoken_words
from .config import atomic_write_text
from .errors import InputError
from .generators import ImageGenerator, VideoGenerator
from .engines import GenerationParams, LLMEngine, TextStream
from .modeling import GPT4Video
from .processing import Turn
from .routing import ImagePrompt, StreamRouter, TextDelta, VideoPrompt
from .safety.layers import INPUT, MODEL, PROMPT, check_layer
from .safety.refusals import SUPPRESSED_OPENING, is_refusal, may_open_refusal, refusal_category
from .video import VideoClip, uniform_timestamps, write_image, write_video

if TYPE_CHECKING:
    from .audio import Transcriber
    from .encoders import FrameScoreRecord
    from .safety import Decision, SafetyPolicy, Verdict

#: How many earlier user turns the input check reads together with the new message.
CONTEXT_TURNS = 3

UNTRAINED_NOTE = (
    "this model's video abstractor is untrained (no trained weights are loaded), so its answers do not "
    "reflect what is in the video"
)


# -- what a reply holds -------------------------------------------------------------------------------
@dataclass
class GeneratedVideo:
    """A clip rendered for one of the reply's video prompts: its frames and how they were made. Nothing is
    on disk until :meth:`save`; then ``path`` (the mp4), ``sidecar`` (JSON) and ``gif`` (if asked) are set."""

    prompt: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float
    backend: str
    seed: int | None
    seconds: float  # rendering time
    request: str = ""
    model: str = ""
    path: str | None = None
    sidecar: str | None = None
    gif: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """How the video was made (and where it was saved, once it was): the sidecar's content."""
        t, h, w = (int(n) for n in self.frames.shape[:3])
        return {"request": self.request, "prompt": self.prompt, "backend": self.backend, "seed": self.seed,
                "num_frames": t, "height": h, "width": w, "fps": self.fps,
                "video": Path(self.path).name if self.path else None,
                "gif": Path(self.gif).name if self.gif else None, "path": self.path,
                "model": self.model, "seconds": round(self.seconds, 4)}

    @property
    def filename(self) -> str:
        """A file name made from the prompt's first eight words: ``a-red-circle-moves-left.mp4``."""
        return _slug(self.prompt, "video") + ".mp4"

    def save(self, directory: str | os.PathLike[str], *, gif: bool = False) -> GeneratedVideo:
        """Write the mp4 (and a gif) into ``directory``, named by the time and :attr:`filename`, plus a JSON
        sidecar (:meth:`to_dict`). Returns self."""
        path = write_video(_new_path(directory, self.filename), self.frames, fps=self.fps)
        self.path = str(path)
        self.gif = str(write_video(path.with_suffix(".gif"), self.frames, fps=self.fps)) if gif else None
        self.sidecar = _write_sidecar(path, self.to_dict())
        return self


@dataclass
class GeneratedImage:
    """An image drawn for one of the reply's image prompts: its pixels and how they were made. Nothing is on
    disk until :meth:`save`; then ``path`` (the PNG) and ``sidecar`` (JSON) are set."""

    prompt: str
    image: np.ndarray  # (H, W, 3) uint8
    backend: str
    seed: int | None
    seconds: float  # rendering time
    request: str = ""
    model: str = ""
    path: str | None = None
    sidecar: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """How the image was made (and where it was saved, once it was): the sidecar's content."""
        h, w = (int(n) for n in self.image.shape[:2])
        return {"request": self.request, "prompt": self.prompt, "backend": self.backend, "seed": self.seed,
                "height": h, "width": w, "image": Path(self.path).name if self.path else None, "path": self.path,
                "model": self.model, "seconds": round(self.seconds, 4)}

    @property
    def filename(self) -> str:
        """A file name made from the prompt's first eight words: ``a-green-square-on-a-white-background.png``."""
        return _slug(self.prompt, "image") + ".png"

    def save(self, directory: str | os.PathLike[str]) -> GeneratedImage:
        """Write the PNG into ``directory``, named by the time and :attr:`filename`, plus a JSON sidecar
        (:meth:`to_dict`). Returns self."""
        path = write_image(_new_path(directory, self.filename), self.image)
        self.path = str(path)
        self.sidecar = _write_sidecar(path, self.to_dict())
        return self


def _slug(prompt: str, default: str) -> str:
    """The prompt's first eight words, lower case, joined by hyphens (``default`` if it has none)."""
    return "-".join(re.findall(r"[a-z0-9]+", prompt.lower())[:8]) or default


def _new_path(directory: str | os.PathLike[str], filename: str) -> Path:
    """``directory/<time>-filename``, numbered if that file exists already."""
    return _unique(Path(directory) / (time.strftime("%Y%m%d-%H%M%S") + "-" + filename))


def _write_sidecar(path: Path, record: dict[str, Any]) -> str:
    """Write ``record`` as the JSON sidecar of ``path`` (same name, .json); returns the sidecar's path."""
    sidecar = path.with_suffix(".json")
    atomic_write_text(sidecar, json.dumps(record, indent=2))
    return str(sidecar)


@dataclass
class ReplyOutput:
    """The finished reply, as plain data.

    ``text``: the reply as shown (prompt tags removed, notices of blocked prompts and withheld videos or images
    appended); ``raw_text``: as the model wrote it. ``video_prompts`` / ``image_prompts``: the prompts that passed
    the prompt check; ``blocked_prompts``: those (of either kind) that did not; ``withheld``: prompts whose
    rendered video or image was flagged. ``generated`` holds the videos, ``generated_images`` the images.
    ``refused`` is true when some layer kept the user from what they asked for, ``refused_by`` names the
    first (one of :data:`~gpt4video.safety.layers.LAYERS`) with ``refusal_category``; ``decisions`` are
    every layer's decisions (:attr:`safety` flattens their verdicts).
    """

    request: str = ""
    input_videos: list[str] = field(default_factory=list)
    input_audio: list[str] = field(default_factory=list)
    #: The lines heard in this turn's videos and audio files, as the model read them before the request: each
    #: source's subtitles line and, with ``SpeechConfig.sounds`` on, its sounds line ("Sounds: a beep ...").
    subtitles: list[str] = field(default_factory=list)
    text: str = ""
    raw_text: str = ""
    video_prompts: list[str] = field(default_factory=list)
    blocked_prompts: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    generated: list[GeneratedVideo] = field(default_factory=list)
    image_prompts: list[str] = field(default_factory=list)
    generated_images: list[GeneratedImage] = field(default_factory=list)
    generation_errors: list[str] = field(default_factory=list)
    refused: bool = False
    refused_by: str | None = None
    refusal_category: str | None = None
    #: The model wrote a learned refusal that was not corroborated, so it answered again.
    refusal_overridden: bool = False
    decisions: list[Decision] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    num_prompt_tokens: int = 0
    num_generated_tokens: int = 0
    finish_reason: str = ""

    def refuse(self, layer: str, category: str | None) -> None:
        """Record that ``layer`` refused (the first layer to refuse is the one reported)."""
        check_layer(layer)
        if not self.refused:
            self.refused, self.refused_by, self.refusal_category = True, layer, category

    @property
    def safety(self) -> list[dict[str, Any]]:
        """Every verdict of every layer, in the order the checks ran (see :func:`safety_rows`)."""
        return safety_rows(self.decisions)

    def to_dict(self) -> dict[str, Any]:
        """The reply as JSON-ready data: the one serialisation every caller uses."""
        return {"text": self.text, "video_prompts": list(self.video_prompts),
                "generated_videos": [v.to_dict() for v in self.generated],
                "image_prompts": list(self.image_prompts),
                "generated_images": [i.to_dict() for i in self.generated_images],
                "generation_errors": list(self.generation_errors), "input_videos": list(self.input_videos),
                "input_audio": list(self.input_audio), "subtitles": list(self.subtitles),
                "refused": self.refused, "refused_by": self.refused_by, "refusal_category": self.refusal_category,
                "refusal_overridden": self.refusal_overridden, "blocked_prompts": list(self.blocked_prompts),
                "withheld": list(self.withheld), "safety": self.safety, "finish_reason": self.finish_reason,
                "num_prompt_tokens": self.num_prompt_tokens, "num_generated_tokens": self.num_generated_tokens,
                "timings": {k: round(float(v), 6) for k, v in self.timings.items()}}


# -- events -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SafetyDecision:
    """A safety layer decided (allowed or not); ``decision.stage`` names the layer."""

    decision: Decision


@dataclass(frozen=True)
class VideoGenerated:
    """A video was rendered for an allowed prompt and passed the frame check."""

    video: GeneratedVideo


@dataclass(frozen=True)
class ImageGenerated:
    """An image was drawn for an allowed prompt and passed the frame check."""

    image: GeneratedImage


@dataclass(frozen=True)
class Done:
    """The reply is complete."""

    output: ReplyOutput


Event = TextDelta | VideoPrompt | ImagePrompt | SafetyDecision | VideoGenerated | ImageGenerated | Done


class Reply:
    """The answer being made. :meth:`events` streams the typed events; iterating the reply streams only the
    text to show. Once the stream ends, :attr:`output` is final (it fills as the reply is made, and its
    fields are readable here too: ``reply.text``, ``reply.refused``, ...). The stream runs once; closing it
    early (a client that left) stops the model and records nothing in the conversation."""

    def __init__(self, events: Iterator[Event], output: ReplyOutput) -> None:
        self._events = events
        self.output = output
        self.done = False

    def events(self) -> Iterator[Event]:
        for event in self._events:
            if isinstance(event, Done):
                self.done = True
            yield event

    def __iter__(self) -> Iterator[str]:
        events = self.events()
        try:
            for event in events:
                if isinstance(event, TextDelta):
                    yield event.text
        finally:
            events.close()

    def consume(self) -> Reply:
        for _ in self.events():
            pass
        return self

    def __getattr__(self, name: str) -> Any:
        # The output's fields read through the reply (reply.text is reply.output.text).
        if name.startswith("_") or name == "output":
            raise AttributeError(name)
        return getattr(self.output, name)


def safety_rows(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """The verdicts of ``decisions`` as rows ``{"stage", "source", "checker", "category", "score",
    "threshold", "flagged", "reason"}`` (``source``: what the checker looked at: message,
    conversation, video, prompt), plus ``scores`` (every category's score) from checkers that score
    each category, so thresholds can be re-chosen from recorded replies."""
    rows = []
    for decision in decisions:
        sources = decision.sources or [""] * len(decision.verdicts)
        for verdict, source in zip(decision.verdicts, sources):
            row = {"stage": decision.stage, "source": source, "checker": verdict.checker,
                   "category": verdict.category, "score": round(verdict.score, 6),
                   "threshold": round(verdict.threshold, 6), "flagged": verdict.flagged,
                   "reason": verdict.reason}
            scores = verdict.details.get("scores")
            if isinstance(scores, Mapping):
                row["scores"] = {c: round(float(s), 6) for c, s in scores.items()}
            rows.append(row)
    return rows


#: The keys of :meth:`ReplyOutput.to_dict`.
OUTPUT_KEYS: tuple[str, ...] = tuple(ReplyOutput().to_dict())


# -- generation settings and the render step ----------------------------------------------------------
@dataclass
class GenerationSettings:
    """How the assistant renders the video and image prompts it writes (paper §3.4): any backend, no retraining.
    ``generator`` None leaves video prompts unrendered, ``image_generator`` None image prompts."""

    generator: VideoGenerator | None
    num_frames: int = 16
    height: int = 256
    width: int = 256
    seed: int | None = None
    progress: bool = False
    image_generator: ImageGenerator | None = None
    image_size: int = 256
    image_seed: int | None = None


@dataclass
class Rendered:
    """What :func:`render_video_prompt` (or :func:`render_image_prompt`) made of one prompt: the video (or image;
    None if blocked, withheld or not renderable), the safety decisions in order, and the error of a prompt the
    backend cannot draw."""

    video: GeneratedVideo | None
    decisions: list[Decision]
    error: str | None = None
    image: GeneratedImage | None = None

    @property
    def refusal(self) -> Decision | None:
        return next((d for d in self.decisions if not d.allowed), None)


def render_video_prompt(prompt: str, generation: GenerationSettings | None, safety: SafetyPolicy | None, *,
                        request: str = "", model: str = "") -> Rendered:
    """The ``prompt`` and ``output`` layers around one render: check the prompt, render it (if a generator
    is set), check the frames. With ``safety`` None nothing is checked."""
    g = generation
    backend = None if g is None else g.generator

    def draw() -> np.ndarray:
        return backend(prompt, num_frames=g.num_frames, height=g.height, width=g.width, seed=g.seed,  # type: ignore[misc, union-attr]
                       progress=g.progress)

    decisions, frames, seconds, error = _checked_render(prompt, "video", None if backend is None else draw, safety)
    if frames is None or backend is None or g is None:
        return Rendered(None, decisions, error)
    return Rendered(GeneratedVideo(prompt, frames, backend.fps, backend.name, g.seed, seconds, request, model), decisions)


def render_image_prompt(prompt: str, generation: GenerationSettings | None, safety: SafetyPolicy | None, *,
                        request: str = "", model: str = "") -> Rendered:
    """:func:`render_video_prompt` for an image prompt: the same two layers around the image backend."""
    g = generation
    backend = None if g is None else g.image_generator

    def draw() -> np.ndarray:
        return backend(prompt, height=g.image_size, width=g.image_size, seed=g.image_seed,  # type: ignore[misc, union-attr]
                       progress=g.progress)

    decisions, pixels, seconds, error = _checked_render(prompt, "image", None if backend is None else draw, safety)
    if pixels is None or backend is None or g is None:
        return Rendered(None, decisions, error)
    image = GeneratedImage(prompt, pixels, backend.name, g.image_seed, seconds, request, model)
    return Rendered(None, decisions, image=image)


def _checked_render(prompt: str, media: str, draw: Callable[[], np.ndarray] | None, safety: SafetyPolicy | None,
                    ) -> tuple[list[Decision], np.ndarray | None, float, str | None]:
    """Check the prompt, ``draw()`` the pixels (unless ``draw`` is None), check them: (decisions, pixels or None if
    blocked, withheld or not drawn, seconds drawing, the error of a prompt the backend cannot draw)."""
    decisions: list[Decision] = []
    if safety is not None:
        decisions.append(safety.check_prompt(prompt, media=media))
        if not decisions[-1].allowed:
            return decisions, None, 0.0, None
    if draw is None:
        return decisions, None, 0.0, None
    t0 = time.perf_counter()
    try:
        pixels = draw()
    except InputError as e:  # PromptNotSupported, or a size the backend cannot make
        return decisions, None, 0.0, str(e)
    seconds = time.perf_counter() - t0
    if safety is not None:
        decisions.append(safety.check_output(pixels, media=media))
        if not decisions[-1].allowed:
            return decisions, None, seconds, None
    return decisions, pixels, seconds, None


# -- the assistant ------------------------------------------------------------------------------------
class Assistant:
    """Holds a conversation: its turns and the features of every video attached so far.

    ``safety``: a :class:`~gpt4video.safety.SafetyPolicy` to check every request and every video
    made (see the module docstring); None checks nothing. ``engine``: the engine that decodes this
    conversation's replies (default: the model's own; the server passes its batched engine). ``speech``: a
    :class:`~gpt4video.audio.Transcriber` that turns the speech of attached videos and audio files into
    subtitles (None: their sound is not heard, and an audio file is refused); with its ``sounds`` on, their
    beeps become the sounds line too (:meth:`~gpt4video.audio.Transcriber.lines`).

    Subtitles (:func:`~gpt4video.audio.format_subtitles`) go first in the user's text of the turn that
    carries the video, one line per video or audio file with speech, in the order attached; a source that
    beeps (sounds on) has its sounds line right after its subtitles line, or alone if nothing is said. Once
    the conversation holds more than one video or audio file, each line names its own ("Subtitles (video 2):
    ...", "Sounds (video 2): ...", "Subtitles (audio 1): ..."), numbered as attached. An audio file
    alone is a conversation without a video: its lines are timed to ``num_frames`` points spread over
    its length, as if it were a video the model samples.
    """

    def __init__(self, model: GPT4Video, generation: GenerationSettings | None = None, *,
                 safety: SafetyPolicy | None = None, engine: LLMEngine | None = None,
                 speech: Transcriber | None = None) -> None:
        self.model = model
        self.engine = engine
        self.generation = generation
        self.safety = safety
        self.speech = speech
        self.turns: list[Turn] = []
        # The user's own words of each user turn in ``turns`` (without the lines heard from their media): what
        # the input check reads as the conversation.
        self._user_messages: list[str] = []
        self.video_paths: list[str] = []
        self.audio_paths: list[str] = []
        # (source, subtitles or sounds line) of the videos and audio files not yet asked about, in order;
        # source: "video 2", "audio 1"
        self._heard: list[tuple[str, str]] = []
        self._features: list[torch.Tensor] = []  # one (1, T, N, D) per video
        self._audio_features: list[torch.Tensor] = []  # with the model's audio branch: one (1, S, D_a) per video
        self._pending: list[int] = []  # videos attached but not yet asked about
        self._pending_audio: list[int] = []  # audio files read but not yet asked about
        # videos not yet safety-checked: index → (frames (T, H, W, 3) uint8, scores the encoder recorded)
        self._unchecked: dict[int, tuple[np.ndarray, FrameScoreRecord | None]] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], *, generation: GenerationSettings | None = None,
                        safety: SafetyPolicy | None = None, **kwargs) -> Assistant:  # noqa: ANN003
        return cls(GPT4Video.from_pretrained(name_or_path, **kwargs), generation, safety=safety)

    @property
    def notes(self) -> list[str]:
        """Things the user must know about the answers (an untrained model, for instance)."""
        return [] if self.model.trained else [getattr(self.model, "untrained_note", UNTRAINED_NOTE)]

    @property
    def checking(self) -> bool:
        """Whether a safety policy is on."""
        return self.safety is not None and self.safety.config.enabled

    def reset(self) -> None:
        self.turns.clear()
        self._user_messages.clear()
        self.video_paths.clear()
        self.audio_paths.clear()
        self._features.clear()
        self._audio_features.clear()
        self._clear_pending()
        self._unchecked.clear()

    def load(self, video: str | os.PathLike[str] | VideoClip) -> VideoClip:
        """Decode a video the way this model samples it (checks the file; raises VideoError if bad)."""
        return self.model.processor.load_video(video)

    def attach(self, videos: Sequence[str | os.PathLike[str] | VideoClip]) -> dict[str, float]:
        """Decode (paths) and encode videos now; they join the next question. Returns decode/encode seconds.

        All files are decoded before any is kept, so one bad file leaves the conversation unchanged.
        With safety on, the frames are kept (with the P(nsfw) the encoder recorded, if it records any)
        until the next question checks them.
        """
        clips = [self.load(v) for v in videos]
        t0 = time.perf_counter()
        branch = getattr(self.model, "audio_encoder", None) is not None
        sounds = [self._sound_of(clip) for clip in clips] if self.speech is not None or branch else [None] * len(clips)
        heard = [self._hear(sound, clip.timestamps) for sound, clip in zip(sounds, clips)]
        t1 = time.perf_counter()
        record = None
        if clips and self.checking:
            with self.model.encoder.recording_frame_scores() as record:
                features = self.model.encode_frames([c.frames for c in clips])  # (V, T, N, D)
        else:
            features = self.model.encode_frames([c.frames for c in clips]) if clips else None  # (V, T, N, D)
        if branch and clips:
            audio = self.model.encode_audio([None if s is None else s.samples for s in sounds])  # (V, S, D_a)
            self._audio_features.extend(audio[i : i + 1] for i in range(len(clips)))
        t2 = time.perf_counter()
        first = len(self.video_paths) + 1
        self._heard.extend((f"video {first + i}", line) for i, lines in enumerate(heard) for line in lines)
        for i, clip in enumerate(clips):
            self.video_paths.append(str(clip.info.path))
            self._features.append(features[i : i + 1])  # type: ignore[index]
            self._pending.append(len(self.video_paths) - 1)
            if self.checking:
                self._unchecked[len(self.video_paths) - 1] = (clip.frames, _video_record(record, i, len(clips)))
        timings = {"decode": sum(c.seconds for c in clips), "encode": t2 - t1}
        if self.speech is not None:
            timings["speech"] = t1 - t0
        return timings

    def listen(self, audio: Sequence[str | os.PathLike[str] | AudioTrack]) -> dict[str, float]:
        """Read audio files (wav, mp3, flac, ogg, ...); their speech joins the next question as subtitles (and
        their beeps as the sounds line, with the recogniser's ``sounds`` on). All are read before any is kept.
        Without a speech recogniser an audio file is an InputError."""
        if self.speech is None:
            raise InputError("an audio file was given, but speech recognition is off, so the model cannot hear it")
        t0 = time.perf_counter()
        tracks = [a if isinstance(a, AudioTrack) else load_audio(a) for a in audio]
        num_frames = self.model.processor.sampling.num_frames
        heard = [self.speech.lines(t, uniform_timestamps(t.duration, num_frames)) for t in tracks]
        first = len(self.audio_paths) + 1
        self._pending_audio.extend(range(len(self.audio_paths), len(self.audio_paths) + len(tracks)))
        self.audio_paths.extend(str(t.path) if t.path else "<samples>" for t in tracks)
        self._heard.extend((f"audio {first + i}", line) for i, lines in enumerate(heard) for line in lines)
        return {"speech": time.perf_counter() - t0}

    @staticmethod
    def _sound_of(clip: VideoClip) -> AudioTrack | None:
        """A video's sound track (None for a still image or a silent video); an AudioError if it is corrupt."""
        if clip.info.is_image:
            return None
        return clip.sound if clip.sound is not None else load_audio(clip.info.path, missing_ok=True)

    def _hear(self, sound: AudioTrack | None, frame_times: Sequence[float]) -> list[str]:
        """The lines of a video's sound: subtitles, then sounds (:meth:`~gpt4video.audio.Transcriber.lines`);
        none without a recogniser or a track."""
        if self.speech is None or sound is None:
            return []
        return self.speech.lines(sound, frame_times)

    @property
    def _several_sources(self) -> bool:
        """Whether the conversation holds more than one video or audio file (lines heard then name theirs)."""
        return len(self.video_paths) + len(self.audio_paths) > 1

    def _subtitle_lines(self) -> list[str]:
        """The subtitles and sounds lines heard since the last question; with several videos or audio files in
        the conversation, each line names whose sound it is."""
        if self._several_sources:
            return [name_source(line, source) for source, line in self._heard]
        return [line for _, line in self._heard]

    def _user_text(self, text: str) -> str:
        """The user's text as the model reads it: the lines heard since the last question, then ``text``."""
        return "\n".join([*self._subtitle_lines(), text])

    def _speech(self) -> list[tuple[str, str]]:
        """(source, words) of the speech heard since the last question, for the input check: "video's speech"
        with one video or audio file in the conversation, "video 2's speech" and so on with several."""
        heard = []
        for source, line in self._heard:
            words = spoken_words(line)
            if words:
                name = source if self._several_sources else ("video" if source.startswith("video") else "audio file")
                heard.append((f"{name}'s speech", words))
        return heard

    def restore(self, history: Sequence[tuple[str, str, Sequence[str | os.PathLike[str] | VideoClip | AudioTrack]]]
                ) -> None:
        """Give the conversation its earlier turns without answering them again.

        ``history``: (role, text, media) per turn, oldest first. A user turn's videos are attached and
        shown with that turn (with safety on, they are checked with the next question, like any new
        video), and its sound files (:class:`~gpt4video.audio.AudioTrack`) heard; an assistant turn is kept
        as written. Videos attached before and not yet asked about join the first restored user turn.
        """
        for role, text, videos in history:
            if role == "user":
                sounds = [m for m in videos if isinstance(m, AudioTrack)]
                videos = [m for m in videos if not isinstance(m, AudioTrack)]
                if videos:
                    self.attach(videos)
                if sounds:
                    self.listen(sounds)
                self.turns.append(Turn("user", self._user_text(text), videos=list(self._pending)))
                self._user_messages.append(text)
                self._clear_pending()
            elif role == "assistant":
                self.turns.append(Turn("assistant", text))
            else:
                raise InputError(f"a turn's role must be 'user' or 'assistant', got {role!r}")

    def ask(
        self, text: str, videos: Sequence[str | os.PathLike[str] | VideoClip] = (),
        params: GenerationParams | None = None, *, audio: Sequence[str | os.PathLike[str] | AudioTrack] = (),
        cancel: threading.Event | None = None,
    ) -> Reply:
        """Ask a question (attaching ``videos`` and ``audio`` files first). Videos and sound are read and the
        input layer decides now (a bad file raises here); the model runs while the reply is streamed, and the
        turn joins the conversation once the reply is complete. Setting ``cancel`` stops the model, its
        prefill included."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the question is empty")
        params = params or GenerationParams()
        request = text.strip()
        # A prompt too long for the model is refused before any video is read or checked.
        new = range(len(self.video_paths), len(self.video_paths) + len(videos))
        self.model.check_prompt_length([*self.turns, Turn("user", request, videos=[*self._pending, *new])],
                                       len(self.video_paths) + len(videos), params)
        first_audio = len(self.audio_paths)
        timings = self.attach(videos) if videos else {}
        if audio:
            try:
                timings["speech"] = timings.get("speech", 0.0) + self.listen(audio)["speech"]
            except InputError:
                self._forget_pending()
                raise
        if self._heard:  # the subtitles and sounds lines lengthen the prompt
            try:
                self.model.check_prompt_length([*self.turns, Turn("user", self._user_text(request),
                                                                  videos=list(self._pending))],
                                               len(self.video_paths), params)
            except InputError:
                self._forget_pending()
                raise
        output = ReplyOutput(request=request, input_videos=[self.video_paths[i] for i in self._pending],
                             input_audio=self.audio_paths[first_audio:], subtitles=self._subtitle_lines(),
                             timings=timings)
        decision = self._check_input(request, output)
        if decision is not None and not decision.allowed:
            return Reply(self._refused(decision, output), output)
        return Reply(self._answer(request, decision, params, output, cancel), output)

    # -- the steps of one reply ------------------------------------------------------------------
    def _context(self, request: str) -> str | None:
        """The last :data:`CONTEXT_TURNS` user messages and this one, joined (None without history)."""
        earlier = self._user_messages[-CONTEXT_TURNS:]
        return "\n".join([*earlier, request]) if earlier else None

    def _check_input(self, request: str, output: ReplyOutput) -> Decision | None:
        """Layer 1: the input decision for ``request`` (the user's words), the speech heard since the last
        question and every video not checked yet (None with safety off)."""
        if not self.checking:
            return None
        t0 = time.perf_counter()
        unchecked = sorted(self._unchecked)
        frames = [self._unchecked[i][0] for i in unchecked]
        records = [self._unchecked[i][1] for i in unchecked]
        decision = self.safety.check_input(request, frames, frame_scores=records,  # type: ignore[union-attr]
                                           context=self._context(request), speech=self._speech())
        self._unchecked.clear()
        output.timings["safety_input"] = time.perf_counter() - t0
        output.decisions.append(decision)
        return decision

    def _forget_pending(self) -> None:
        """Drop the videos, audio files and subtitles attached since the last question."""
        for i in sorted(self._pending_audio, reverse=True):  # pending audio files are the last ones read
            del self.audio_paths[i]
        for i in sorted(self._pending, reverse=True):  # pending videos are always the last ones attached
            del self.video_paths[i]
            del self._features[i]
            if self._audio_features:
                del self._audio_features[i]
            self._unchecked.pop(i, None)
        self._clear_pending()

    def _clear_pending(self) -> None:
        """Nothing attached is pending any more: it joined a turn, or was dropped."""
        self._pending.clear()
        self._pending_audio.clear()
        self._heard.clear()

    def _refused(self, decision: Decision, output: ReplyOutput) -> Iterator[Event]:
        """The events of a request the input layer refused: the model is not called, and the refused turn
        and the videos that came with it leave the conversation (now, not when the reply is read)."""
        self._forget_pending()
        output.refuse(INPUT, decision.category)
        output.text = output.raw_text = decision.message
        output.finish_reason = "refused"
        return iter([SafetyDecision(decision), TextDelta(decision.message), Done(output)])

    def _answer(self, request: str, input_decision: Decision | None, params: GenerationParams,
                output: ReplyOutput, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Layers 2 to 4 around the model's answer; see the module docstring."""
        if input_decision is not None:
            yield SafetyDecision(input_decision)
        user = Turn("user", self._user_text(request), videos=list(self._pending))
        turns = [*self.turns, user]
        features = {"features": torch.cat(self._features, dim=0) if self._features else None}
        if self._audio_features:
            features["audio_features"] = torch.cat(self._audio_features, dim=0)  # (V, S, D_a)
        suspicion = (self.safety.suspicion(request, input_decision, self._context(request))  # type: ignore[union-attr]
                     if self.checking else None)

        router, shown, written = StreamRouter(), [], []

        def routed() -> Iterator[Event]:  # the model's text split into text and prompts
            for item in self._decode(turns, features, params, suspicion, output, cancel):
                yield from [item] if isinstance(item, SafetyDecision) else router.feed(item)
            yield from router.close()

        for event in routed():
            if isinstance(event, TextDelta):
                shown.append(event.text)
            elif isinstance(event, (VideoPrompt, ImagePrompt)):
                written.append(event)
            yield event

        # The history keeps the reply as written (tags included), so the model sees what it asked for.
        self.turns.extend([user, Turn("assistant", output.raw_text)])
        self._user_messages.append(request)
        self._clear_pending()
        decision = self._check_model_reply(request, output.raw_text, suspicion, output)
        if decision is not None:
            yield SafetyDecision(decision)

        notices = []
        t0 = time.perf_counter()
        spent = {VideoPrompt: 0.0, ImagePrompt: 0.0}  # seconds checking and rendering each kind
        for asked in written:
            t1, prompt, image = time.perf_counter(), asked.prompt, isinstance(asked, ImagePrompt)
            render = render_image_prompt if image else render_video_prompt
            rendered = render(prompt, self.generation, self.safety if self.checking else None,
                              request=request, model=self.model.source)
            spent[type(asked)] += time.perf_counter() - t1
            for decision in rendered.decisions:
                output.decisions.append(decision)
                yield SafetyDecision(decision)
            refusal = rendered.refusal
            if refusal is not None and refusal.stage == PROMPT:
                output.blocked_prompts.append(prompt)
            else:
                (output.image_prompts if image else output.video_prompts).append(prompt)
                if refusal is not None:
                    output.withheld.append(prompt)
            if refusal is not None:
                output.refuse(refusal.stage, refusal.category)
                notices.append(refusal.message)
            if rendered.error is not None:
                output.generation_errors.append(rendered.error)
            if rendered.video is not None:
                output.generated.append(rendered.video)
                yield VideoGenerated(rendered.video)
            if rendered.image is not None:
                output.generated_images.append(rendered.image)
                yield ImageGenerated(rendered.image)
        if written and self.checking:
            output.timings["safety_prompt"] = time.perf_counter() - t0
        kinds = {type(asked) for asked in written}
        if VideoPrompt in kinds and self.generation is not None:
            output.timings["video_generation"] = spent[VideoPrompt]
        if ImagePrompt in kinds and self.generation is not None:
            output.timings["image_generation"] = spent[ImagePrompt]
        for notice in notices:  # why a prompt was blocked or a video withheld
            piece = ("\n" if "".join(shown).strip() else "") + notice
            shown.append(piece)
            yield TextDelta(piece)
        output.text = "".join(shown)
        yield Done(output)

    def _decode(self, turns: list[Turn], features: dict[str, torch.Tensor | None], params: GenerationParams,
                suspicion: Verdict | None, output: ReplyOutput,
                cancel: threading.Event | None = None) -> Iterator[str | SafetyDecision]:
        """The model's answer as raw text pieces (tags included); fills ``output``'s raw text, token counts,
        finish reason and timings. ``features``: the model's inputs for the conversation's videos
        (``features``, plus ``audio_features`` with an audio branch).

        The corroboration step (layer 2): for a request below the suspicion threshold, the start of the
        answer is held back while it may still become a learned refusal; if it does, the refusal is
        overridden (a :class:`SafetyDecision` is yielded) and the model answers again, kept from opening
        with :data:`~gpt4video.safety.refusals.SUPPRESSED_OPENING`; that answer is streamed instead."""
        held, holding = "", suspicion is not None and not suspicion.flagged
        with self.model.generate_stream(turns, (), params, **features, cancel=cancel,
                                        engine=self.engine) as first:
            for piece in first:
                if not holding:
                    yield piece
                    continue
                held += piece
                if not may_open_refusal(held):
                    holding = False
                    yield held
        _add_stream_stats(output, first)
        output.raw_text = first.text
        if not holding or not is_refusal(held):
            if holding and held:
                yield held
            return
        decision = self.safety.override_model_refusal(  # type: ignore[union-attr]
            output.request, held, refusal_category(held), suspicion)
        output.decisions.append(decision)
        output.refusal_overridden = True
        yield SafetyDecision(decision)
        t0 = time.perf_counter()
        tokenizer = self.model.tokenizer
        openings = tuple(ids for ids in (tuple(tokenizer.encode(form, add_special_tokens=False))
                                         for form in (SUPPRESSED_OPENING, " " + SUPPRESSED_OPENING)) if ids)
        with self.model.generate_stream(turns, (), replace(params, suppress_openings=openings),
                                        **features, cancel=cancel, engine=self.engine) as second:
            yield from second
        output.timings["refusal_redecode"] = time.perf_counter() - t0
        output.raw_text = second.text
        output.num_generated_tokens += second.num_generated_tokens
        output.finish_reason = second.finish_reason

    def _check_model_reply(self, request: str, reply: str, suspicion: Verdict | None,
                           output: ReplyOutput) -> Decision | None:
        """Layer 2 after decoding: a learned refusal left standing is honoured (a refusal despite the
        suppression is honoured too). Without a policy it is still reported, with no decision."""
        if not is_refusal(reply):
            return None
        category = refusal_category(reply)
        output.refuse(MODEL, category)
        if not self.checking:
            return None
        decision = self.safety.check_model_reply(request, reply, suspicion)  # type: ignore[union-attr]
        if decision is not None:
            output.decisions.append(decision)
        return decision


def _add_stream_stats(output: ReplyOutput, stream: TextStream) -> None:
    """Copy a finished model stream's counts, finish reason and timings into ``output``."""
    output.timings.update(stream.timings)
    output.num_prompt_tokens = stream.num_prompt_tokens
    output.num_generated_tokens = stream.num_generated_tokens
    output.finish_reason = stream.finish_reason


def _video_record(record: FrameScoreRecord | None, index: int, count: int) -> FrameScoreRecord | None:
    """Video ``index``'s share of a record filled while encoding ``count`` videos of T frames each."""
    if record is None or not record.available or not record.scores or len(record.scores) % count:
        return None
    t = len(record.scores) // count
    return replace(record, scores=record.scores[index * t:(index + 1) * t])


def _unique(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
