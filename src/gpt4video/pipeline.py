"""The assistant: a multi-turn conversation about videos, over a :class:`GPT4Video` model.

Videos are decoded (T frames sampled uniformly by seeking) and encoded once, when they are attached;
later turns reuse their features. Each reply streams as text pieces and ends with its timings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import InputError
from .modeling import GenerationParams, GenerationStream, GPT4Video
from .processing import Turn
from .video import VideoClip, load_video

UNTRAINED_NOTE = (
    "this model's video abstractor is untrained (no trained weights are loaded), so its answers do not "
    "reflect what is in the video"
)


@dataclass
class Reply:
    """One answer. Iterate for text pieces as they are generated; then ``text`` and ``timings`` are final."""

    _stream: GenerationStream
    _timings: dict[str, float]
    _on_done: object = None
    videos: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        yield from self._stream
        self._finish()

    def consume(self) -> Reply:
        for _ in self:
            pass
        return self

    def _finish(self) -> None:
        if self._on_done is not None:
            done, self._on_done = self._on_done, None
            done(self._stream.text)  # type: ignore[operator]

    @property
    def text(self) -> str:
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

    def __init__(self, model: GPT4Video) -> None:
        self.model = model
        self.turns: list[Turn] = []
        self.video_paths: list[str] = []
        self._features: list[torch.Tensor] = []  # one (1, T, N, D) per video
        self._pending: list[int] = []  # videos attached but not yet asked about

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], **kwargs) -> Assistant:  # noqa: ANN003
        return cls(GPT4Video.from_pretrained(name_or_path, **kwargs))

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

        def done(answer: str) -> None:
            self.turns.extend([user, Turn("assistant", answer)])
            self._pending.clear()

        return Reply(stream, timings, done, videos=[self.video_paths[i] for i in user.videos])
