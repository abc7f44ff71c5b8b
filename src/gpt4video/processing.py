"""Conversation template, video placeholders and tokenization (paper §3.3): the one place prompts are built.

Two templates (``llm.chat_template``). ``paper``, the paper's prompt::

    ###Human: <video>{video tokens}</video>
    ###Human: {instruction}
    ###AI: {answer}

and ``native``, the tokenizer's own chat template (``apply_chat_template``: Llama 3.x, Qwen2.5/3, Gemma,
SmolLM2, ...), with each user turn's videos written at the start of its message::

    <video>{video tokens}</video>\n{instruction}

With several videos in one conversation each gets a numbered tag, ``<video1>…</video1>``,
``<video2>…</video2>``, placed in the turn where the user attached it, so videos and turns interleave.

Each video becomes exactly ``num_video_tokens`` copies of one placeholder token; the model replaces
their embeddings with the abstractor's output. The template pieces are tokenized one by one and the
ids concatenated, so the boundaries are the same in training and in generation, and the labels mask
everything except the assistant's replies (and the end-of-turn token that closes each). A native
template is rendered with a marker in place of every message; the text between markers is the
template's own, tokenized as it stands, and each marker is replaced by its message's tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from .errors import ConfigError, InputError
from .video import VideoClip, load_video

if TYPE_CHECKING:
    from .config import ModelConfig

VIDEO_TOKEN = "<|video_pad|>"
IGNORE_INDEX = -100
HUMAN = "###Human: "
AI = "###AI: "
#: How many texts' token ids a processor keeps (then it starts over).
TOKEN_CACHE_SIZE = 4096
#: What stands for message i while a native chat template is rendered (plain text no template alters).
SLOT = "@@gpt4video-message-{}@@"
_SLOT_RE = re.compile(r"@@gpt4video-message-(\d+)@@")
#: The prompt templates ``llm.chat_template`` names.
CHAT_TEMPLATES = ("paper", "native")

Role = Literal["user", "assistant"]


@dataclass
class Turn:
    """One turn. ``videos`` are indices into the conversation's list of videos, attached to this user turn."""

    role: Role
    text: str
    videos: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise InputError(f"turn role must be 'user' or 'assistant', got {self.role!r}")
        if not isinstance(self.text, str):
            raise InputError(f"turn text must be a string, got {type(self.text).__name__}")
        if self.videos and self.role != "user":
            raise InputError("only user turns can carry videos")


def ensure_video_token(tokenizer) -> int:  # noqa: ANN001 - any HF tokenizer
    """Add the placeholder token to the tokenizer if needed and return its id."""
    if VIDEO_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [VIDEO_TOKEN]})
    return int(tokenizer.convert_tokens_to_ids(VIDEO_TOKEN))


@dataclass(frozen=True)
class VideoSampling:
    """How a model sees a video: ``num_frames`` frames sampled uniformly, scaled so that their longer side is
    at most ``frame_size`` pixels (None keeps the size). The one place that picks frame counts and sizes:
    the CLI, the pipeline, training, the feature cache and the server all read videos through it."""

    num_frames: int
    frame_size: int | None = None

    @classmethod
    def from_config(cls, config: ModelConfig) -> VideoSampling:
        return cls(config.num_frames, config.frame_size)

    def load(self, video: str | os.PathLike[str] | VideoClip) -> VideoClip:
        """Decode a video or image file (a :class:`VideoClip` passes through). Raises VideoError if unreadable."""
        if isinstance(video, VideoClip):
            return video
        return load_video(video, num_frames=self.num_frames, max_side=self.frame_size)

    def fit(self, frames: np.ndarray, index: int = 0) -> np.ndarray:
        """Frames (T_i, H, W, 3) → exactly ``num_frames`` of them, spread evenly: a still image (one frame)
        repeats, a longer array is subsampled. ``index`` names the video in the error message."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
            raise InputError(f"video {index}: expected frames of shape (T, H, W, 3), got {frames.shape}")
        if frames.shape[0] == self.num_frames:
            return frames
        return frames[np.linspace(0, frames.shape[0] - 1, self.num_frames).round().astype(int)]


@dataclass
class Encoded:
    input_ids: torch.Tensor  # (L,) long
    labels: torch.Tensor  # (L,) long, IGNORE_INDEX outside assistant replies
    num_videos: int


class GPT4VideoProcessor:
    """Everything between the user's inputs and the model's tensors: reading videos and images
    (:attr:`sampling`), the chat template (``chat_template``: ``paper`` or ``native``, see the module's
    docstring), the expansion of each video into its placeholder tokens, and batching. (Pixel
    normalisation for the frame encoder stays with the encoder, which knows its own.)

    :attr:`eos_token_id` is the token that ends an assistant turn: the tokenizer's end of sequence with the
    paper template, the token the native template closes an assistant turn with (``<|im_end|>``,
    ``<|eot_id|>``, ``<end_of_turn>``, ...).
    """

    def __init__(self, tokenizer, num_video_tokens: int, sampling: VideoSampling | None = None,  # noqa: ANN001
                 chat_template: str = "paper", template_options: dict | None = None) -> None:
        if num_video_tokens < 1:
            raise InputError("num_video_tokens must be >= 1")
        if chat_template not in CHAT_TEMPLATES:
            raise ConfigError(f"llm.chat_template must be one of {', '.join(CHAT_TEMPLATES)}, got {chat_template!r}")
        self.tokenizer = tokenizer
        self.num_video_tokens = num_video_tokens
        self.sampling = sampling or VideoSampling(num_frames=4)
        self.chat_template = chat_template
        self.template_options = dict(template_options or {})  # the native template's variables
        self.video_token_id = ensure_video_token(tokenizer)
        self._token_ids: dict[str, tuple[int, ...]] = {}
        self._layouts: dict[tuple[tuple[str, ...], bool], list[str | int]] = {}
        self._special_ids: frozenset[int] | None = None  # the tokenizer's special tokens, read on first use
        #: strings that end a reply in this template (GenerationParams.stop's default)
        self.stop_strings: tuple[str, ...] = ("###",) if chat_template == "paper" else ()
        if chat_template == "native":
            if not getattr(tokenizer, "chat_template", None):
                raise ConfigError("llm.chat_template is 'native' but the LLM's tokenizer has no chat template; "
                                  "use chat_template: paper, or a tokenizer that has one")
            self.eos_token_id = self._native_end_of_turn()
        else:
            if tokenizer.eos_token_id is None:
                raise InputError("the tokenizer has no end-of-sequence token")
            self.eos_token_id = int(tokenizer.eos_token_id)

    # -- videos ----------------------------------------------------------------------------------
    def load_video(self, video: str | os.PathLike[str] | VideoClip) -> VideoClip:
        """Decode a video the way this model samples it (see :class:`VideoSampling`)."""
        return self.sampling.load(video)

    def video_frames(self, videos: list[np.ndarray]) -> list[np.ndarray]:
        """Each video's frames fitted to the model's frame count, flattened in order (V·T frames)."""
        return [frame for i, v in enumerate(videos) for frame in self.sampling.fit(v, i)]

    # -- rendering -------------------------------------------------------------------------------
    def _ids(self, text: str) -> tuple[int, ...]:
        """``text``'s token ids. Each text is tokenized once: a server encodes a prompt to check its length
        before queueing it, the assistant before reading its videos, the model to answer, and every reply of
        a conversation encodes its earlier turns again."""
        ids = self._token_ids.get(text)
        if ids is None:
            if len(self._token_ids) >= TOKEN_CACHE_SIZE:
                self._token_ids.clear()
            ids = self._token_ids[text] = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids

    def _video_ids(self, index: int, total: int) -> list[int]:
        tag = "video" if total == 1 else f"video{index + 1}"
        opening = f"{HUMAN}<{tag}>" if self.chat_template == "paper" else f"<{tag}>"
        return [*self._ids(opening), *[self.video_token_id] * self.num_video_tokens, *self._ids(f"</{tag}>\n")]

    def encode(
        self, turns: list[Turn], num_videos: int | None = None, *, add_generation_prompt: bool = True
    ) -> Encoded:
        """Token ids and labels for a conversation.

        ``num_videos`` is the number of videos supplied with it (checked against the turns' references).
        With ``add_generation_prompt`` the ids end with the opening of the assistant's turn (``###AI: `` in
        the paper template) after a final user turn.
        """
        if not turns:
            raise InputError("a conversation needs at least one turn")
        referenced = [i for t in turns for i in t.videos]
        total = len(referenced) if num_videos is None else num_videos
        if sorted(referenced) != list(range(total)):
            raise InputError(
                f"the turns reference videos {referenced}, but {total} video(s) were given: each must be used once"
            )
        ids: list[int] = []
        labels: list[int] = []

        def add(piece: Sequence[int], train: bool) -> None:
            ids.extend(piece)
            labels.extend(piece if train else [IGNORE_INDEX] * len(piece))

        if self.chat_template == "native":
            self._add_native(turns, total, add_generation_prompt and turns[-1].role == "user", add)
        else:
            for turn in turns:
                if turn.role == "user":
                    for v in turn.videos:
                        add(self._video_ids(v, total), False)
                    add(self._ids(f"{HUMAN}{turn.text}\n"), False)
                else:
                    add(self._ids(AI), False)
                    add([*self._ids(turn.text), self.eos_token_id], True)
                    add(self._ids("\n"), False)
            if add_generation_prompt and turns[-1].role == "user":
                add(self._ids(AI), False)
        return Encoded(torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long), total)

    # -- the tokenizer's own chat template -------------------------------------------------------
    def _native_layout(self, roles: tuple[str, ...], add_generation_prompt: bool) -> list[str | int]:
        """The native template's rendering of a conversation with these roles: its own text (str) and, in
        between, the index (int) of the message that goes there. Rendered once per role sequence."""
        key = (roles, add_generation_prompt)
        layout = self._layouts.get(key)
        if layout is not None:
            return layout
        messages = [{"role": role, "content": SLOT.format(i)} for i, role in enumerate(roles)]
        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=add_generation_prompt,
                                                      **self.template_options)
        except Exception as e:  # noqa: BLE001 - a template's raise_exception, or any Jinja error
            reason = " ".join(str(e).split()) or type(e).__name__
            raise InputError(f"the LLM's chat template refuses a conversation of turns {list(roles)}: {reason}") from None
        parts: list[str] = _SLOT_RE.split(text)  # literal, index, literal, index, ..., literal
        order = [int(i) for i in parts[1::2]]
        if order != list(range(len(roles))):
            raise InputError(f"the LLM's chat template does not write each message once and in order (it wrote "
                             f"messages {order} of {len(roles)}); use llm.chat_template: paper")
        layout = [int(p) if k % 2 else p for k, p in enumerate(parts)]
        if len(self._layouts) >= TOKEN_CACHE_SIZE:
            self._layouts.clear()
        self._layouts[key] = layout
        return layout

    def _end_of_turn(self, ids: Sequence[int]) -> int | None:
        """Where in ``ids`` (the template's text after an assistant message) the first special token is."""
        if self._special_ids is None:
            self._special_ids = frozenset(self.tokenizer.all_special_ids) | {
                i for i, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items() if tok.special}
            self._special_ids -= {self.video_token_id}
        return next((k for k, t in enumerate(ids) if t in self._special_ids), None)

    def _native_end_of_turn(self) -> int:
        """The token the native template ends an assistant turn with."""
        layout = self._native_layout(("user", "assistant"), False)
        after = self._ids(layout[layout.index(1) + 1])
        end = self._end_of_turn(after)
        if end is None:
            raise ConfigError(f"the LLM's chat template ends an assistant turn with no special token (it writes "
                              f"{layout[layout.index(1) + 1]!r}), so a reply's end cannot be learned; "
                              "use llm.chat_template: paper")
        return int(after[end])

    def _add_native(self, turns: list[Turn], total: int, generation_prompt: bool, add) -> None:  # noqa: ANN001
        """The pieces of ``turns`` in the native template: the template's text as it is, each user message as
        its videos then its text, each assistant message and the template's text up to its end-of-turn token
        learned."""
        reply_ended = True
        for part in self._native_layout(tuple(t.role for t in turns), generation_prompt):
            if isinstance(part, str):
                piece = self._ids(part)
                end = -1 if reply_ended else self._end_of_turn(piece)
                if end is None:
                    raise InputError("the LLM's chat template writes no end-of-turn token after an assistant turn")
                add(piece[:end + 1], True)
                add(piece[end + 1:], False)
                reply_ended = True
            elif turns[part].role == "user":
                for v in turns[part].videos:
                    add(self._video_ids(v, total), False)
                add(self._ids(turns[part].text), False)
            else:
                add(self._ids(turns[part].text), True)
                reply_ended = False

    def render(self, turns: list[Turn], num_videos: int | None = None) -> str:
        """The prompt as text (placeholders shown once per video), for logging and debugging."""
        enc = self.encode(turns, num_videos)
        text = self.tokenizer.decode(enc.input_ids.tolist())
        return text.replace(VIDEO_TOKEN * self.num_video_tokens, f"[{self.num_video_tokens} video tokens]")

    # -- batching --------------------------------------------------------------------------------
    def collate(self, items: list[Encoded], *, padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad to the longest item: input_ids, attention_mask, labels (B, L)."""
        if not items:
            raise InputError("cannot collate an empty batch")
        length = max(len(e.input_ids) for e in items)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id
        input_ids = torch.full((len(items), length), pad_id, dtype=torch.long)
        labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), length), dtype=torch.long)
        for row, e in enumerate(items):
            n = len(e.input_ids)
            sl = slice(0, n) if padding_side == "right" else slice(length - n, length)
            input_ids[row, sl] = e.input_ids
            labels[row, sl] = e.labels
            mask[row, sl] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
