"""The assistant: a multi-turn conversation about videos, over a :class:`GPT4Video` model.

Videos are decoded (T frames sampled uniformly by seeking) and encoded once, when they are attached;
later turns reuse their features. Each reply streams as text pieces and ends with its timings.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import InputError
from .config import atomic_write_text
from .generators import VideoGenerator
from .modeling import GenerationParams, GenerationStream, GPT4Video
from .processing import Turn
from .routing import StreamRouter, TextDelta
from .video import VideoClip, load_video, write_video

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
    afterwards ``text``, ``video_prompts``, ``generated`` and ``timings`` are final."""

    _stream: GenerationStream
    _timings: dict[str, float]
    _on_done: object = None
    videos: list[str] = field(default_factory=list)
    request: str = ""
    video_prompts: list[str] = field(default_factory=list)
    generated: list[GeneratedVideo] = field(default_factory=list)
    generation_errors: list[str] = field(default_factory=list)
    _shown: list[str] = field(default_factory=list)
    _router: StreamRouter = field(default_factory=StreamRouter)

    def __iter__(self) -> Iterator[str]:
        for piece in self._stream:
            yield from self._route(self._router.feed(piece))
        yield from self._route(self._router.close())
        self._finish()

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


class Assistant:
    """Holds a conversation: its turns and the features of every video attached so far."""

    def __init__(self, model: GPT4Video, generation: GenerationSettings | None = None) -> None:
        self.model = model
        self.generation = generation
        self.turns: list[Turn] = []
        self.video_paths: list[str] = []
        self._features: list[torch.Tensor] = []  # one (1, T, N, D) per video
        self._pending: list[int] = []  # videos attached but not yet asked about

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], *, generation: GenerationSettings | None = None,
                        **kwargs) -> Assistant:  # noqa: ANN003
        return cls(GPT4Video.from_pretrained(name_or_path, **kwargs), generation)

    @property
    def notes(self) -> list[str]:
        """Things the user must know about the answers (an untrained model, for instance)."""
        return [] if self.model.trained else [UNTRAINED_NOTE]

    def reset(self) -> None:
        self.turns.clear()
        self.video_paths.clear()
        self._features.clear()
        self._pending.clear()

    def load(self, path: str | os.PathLike[str]) -> VideoClip:
        """Decode a video the way this model samples it (checks the file; raises VideoError if bad)."""
        cfg = self.model.config
        return load_video(path, num_frames=cfg.num_frames, max_side=cfg.frame_size)

    def attach(self, videos: Sequence[str | os.PathLike[str] | VideoClip]) -> dict[str, float]:
        """Decode (paths) and encode videos now; they join the next question. Returns decode/encode seconds.

        All files are decoded before any is kept, so one bad file leaves the conversation unchanged.
        """
        clips = [v if isinstance(v, VideoClip) else self.load(v) for v in videos]
        t1 = time.perf_counter()
        features = self.model.encode_frames([c.frames for c in clips]) if clips else None  # (V, T, N, D)
        t2 = time.perf_counter()
        for i, clip in enumerate(clips):
            self.video_paths.append(str(clip.info.path))
            self._features.append(features[i : i + 1])  # type: ignore[index]
            self._pending.append(len(self.video_paths) - 1)
        return {"decode": sum(c.seconds for c in clips), "encode": t2 - t1}

    def ask(
        self, text: str, videos: Sequence[str | os.PathLike[str] | VideoClip] = (),
        params: GenerationParams | None = None,
    ) -> Reply:
        """Ask a question (attaching ``videos`` first). The turn is recorded once the reply is complete."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the question is empty")
        timings = self.attach(videos) if videos else {}
        user = Turn("user", text.strip(), videos=list(self._pending))
        turns = [*self.turns, user]
        features = torch.cat(self._features, dim=0) if self._features else None
        stream = self.model.generate_stream(turns, (), params, features=features)

        def done(reply: Reply) -> None:
            # The history keeps the reply as written (tags included), so the model sees what it asked for.
            self.turns.extend([user, Turn("assistant", reply.raw_text)])
            self._pending.clear()
            if self.generation is not None:
                t0 = time.perf_counter()
                for prompt in reply.video_prompts:
                    try:
                        reply.generated.append(self.render(prompt, request=text.strip()))
                    except InputError as e:  # PromptNotSupported, or a size the backend cannot make
                        reply.generation_errors.append(str(e))
                if reply.video_prompts:
                    reply._timings["video_generation"] = time.perf_counter() - t0

        return Reply(stream, timings, done, videos=[self.video_paths[i] for i in user.videos], request=text.strip())

    def render(self, prompt: str, *, request: str = "") -> GeneratedVideo:
        """Render one video prompt with the configured backend; writes the mp4 (and gif) plus a JSON sidecar."""
        if self.generation is None:
            raise InputError("no video generator is configured")
        return render_prompt(self.generation, prompt, request=request, model=self.model.source)


def render_prompt(g: GenerationSettings, prompt: str, *, request: str = "", model: str = "") -> GeneratedVideo:
    """Render ``prompt`` with ``g.generator`` into ``g.output_dir``: an mp4 (and gif) plus a JSON sidecar."""
    t0 = time.perf_counter()
    frames = g.generator(prompt, num_frames=g.num_frames, height=g.height, width=g.width, seed=g.seed,
                         progress=g.progress)
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
