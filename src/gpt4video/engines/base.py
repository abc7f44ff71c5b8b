"""What every decoding engine takes and gives back.

An engine turns a prompt (input embeddings with the video tokens filled in, or token ids) into a
streamed reply: prefill, then decoding with :class:`GenerationParams` (greedy or temperature/top-p
sampling, repetition penalty, stop strings, openings the reply may not start with), streaming text
pieces, and cancellation when the caller stops reading. The KV cache is the engine's own business.

:class:`ReplyText` is the one place that turns generated token ids into streamed text: it cuts at stop
strings and holds back what could still become one, so every engine streams the same text for the same
tokens.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..config import GenerationParams
from ..errors import ConfigError

if TYPE_CHECKING:
    from .batching import DecodeSlots


@dataclass
class EngineRequest:
    """One prompt to decode: ``inputs_embeds`` (L, D) or ``input_ids`` (L,), exactly one of them."""

    params: GenerationParams
    inputs_embeds: torch.Tensor | None = None
    input_ids: torch.Tensor | None = None
    #: seconds spent before decoding (reading and encoding videos), carried into the result's timings
    timings: dict[str, float] = field(default_factory=dict)
    #: set by the caller (from any thread) to stop the request, its prefill included
    cancel: threading.Event | None = None
    #: further inputs of a model that reads images itself (a video LLM's pixel values), keyed as its forward names them
    model_inputs: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def __post_init__(self) -> None:
        if (self.inputs_embeds is None) == (self.input_ids is None):
            raise ValueError("an EngineRequest needs exactly one of inputs_embeds and input_ids")

    @property
    def num_prompt_tokens(self) -> int:
        prompt = self.inputs_embeds if self.inputs_embeds is not None else self.input_ids
        return int(prompt.shape[0])  # type: ignore[union-attr]


@dataclass
class DecodeResult:
    """What a finished decode leaves behind (filled by the engine while the stream runs)."""

    text: str = ""
    num_prompt_tokens: int = 0
    num_generated_tokens: int = 0
    finish_reason: str = ""  # "stop" (end of sequence or a stop string), "length" or "cancelled"
    timings: dict[str, float] = field(default_factory=dict)

    def first_token(self, started: float) -> float:
        """Record that the first token was chosen now (``started``: when the prefill began); returns now."""
        now = time.perf_counter()
        self.timings["prefill"] = self.timings["time_to_first_token"] = now - started
        return now

    def close(self, reply: ReplyText, first_token_at: float | None) -> None:
        """Record the final text, the token count and the decode rate after the first token."""
        self.text = reply.text.rstrip()
        self.num_generated_tokens = len(reply.tokens)
        if first_token_at is not None:
            elapsed = time.perf_counter() - first_token_at
            steps = len(reply.tokens) - 1
            self.timings["generation"] = elapsed
            self.timings["tokens_per_second"] = steps / elapsed if steps > 0 and elapsed > 0 else 0.0


class TextStream:
    """A reply being decoded. Iterate for its text pieces; afterwards :attr:`result` is final.
    :meth:`close` (or leaving a ``with`` block) cancels a decode that is still running."""

    def __init__(self, pieces: Iterator[str], result: DecodeResult | None = None) -> None:
        self._pieces = pieces
        self.result = result if result is not None else DecodeResult()

    @classmethod
    def of_text(cls, pieces: Sequence[str]) -> TextStream:
        """A stream of fixed pieces (for tests and stand-in models); its text is their concatenation."""
        result = DecodeResult(finish_reason="stop")

        def emit() -> Iterator[str]:
            for piece in pieces:
                result.text += piece
                yield piece

        return cls(emit(), result)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pieces)

    @property
    def text(self) -> str:
        return self.result.text

    @property
    def timings(self) -> dict[str, float]:
        return self.result.timings

    @property
    def num_prompt_tokens(self) -> int:
        return self.result.num_prompt_tokens

    @property
    def num_generated_tokens(self) -> int:
        return self.result.num_generated_tokens

    @property
    def finish_reason(self) -> str:
        return self.result.finish_reason

    def consume(self) -> TextStream:
        for _ in self:
            pass
        return self

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LLMEngine(ABC):
    """Decodes replies of one causal LM. ``generate`` starts no work until its stream is read."""

    name: str = ""
    #: whether prompts may come as input embeddings; engines without it get token ids
    accepts_embeddings: bool = True

    @abstractmethod
    def generate(self, request: EngineRequest) -> TextStream:
        """Stream the reply to ``request``."""

    def decode_slots(self, size: int) -> DecodeSlots:
        """A KV cache of ``size`` sequences decoded together (for :class:`~.batching.BatchedEngine`)."""
        raise ConfigError(f"the {self.name or type(self).__name__} engine cannot decode requests in batches")

    def batched(self, size: int, pipeline_lock: threading.RLock | None = None) -> LLMEngine:
        """The engine that decodes up to ``size`` requests together (what a server answers with): a
        :class:`~.batching.BatchedEngine` over :meth:`decode_slots`, unless the engine batches by itself."""
        from .batching import BatchedEngine

        return BatchedEngine(self.decode_slots(size), pipeline_lock=pipeline_lock)

    def close(self) -> None:
        """Stop what the engine runs in the background (nothing, unless it has a scheduler thread)."""


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string."""
    keep = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                keep = max(keep, k)
                break
    return keep


class ReplyText:
    """Turns generated token ids into streamed text.

    The whole reply is decoded again at each token (so multi-token characters and merges come out
    right), leading white space is dropped, the text is cut at the first stop string, and trailing
    white space, a possible start of a stop string and half a multi-byte character are held back until
    the next token resolves them.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = tuple(stops)
        self.tokens: list[int] = []
        self.text = ""
        self.stopped = False
        self._emitted = 0

    def add(self, token: int) -> str:
        """Append ``token``; the text that became safe to show (possibly empty)."""
        self.tokens.append(int(token))
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True).lstrip()
        cut = min((text.find(s) for s in self.stops if s in text), default=-1)
        if cut >= 0:
            self.text, self.stopped = text[:cut], True
            return ""
        self.text = text
        safe = len(text[: len(text) - _held_back(text, self.stops)].rstrip())
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            safe = min(safe, len(text) - 1)
        if safe <= self._emitted:
            return ""
        piece, self._emitted = text[self._emitted:safe], safe
        return piece

    def finish(self) -> str:
        """The rest of the reply (trailing white space dropped); afterwards ``text`` is final."""
        self.text = self.text.rstrip()
        piece = self.text[self._emitted:]
        self._emitted = len(self.text)
        return piece


def stream_reply(tokens: Iterator[int], tokenizer: Any, request: EngineRequest, result: DecodeResult,
                 eos_token_ids: Collection[int]) -> Iterator[str]:
    """The reply's text pieces from an engine's token iterator, the same for every engine.

    The reply ends at an end token, at a stop string, or when ``tokens`` ends (``max_new_tokens``, or a
    cancelled request: finish reason "cancelled"). ``tokens`` is closed on the way out, so the engine stops
    decoding as soon as the reply is complete or its reader leaves; ``result`` gets the text, the token
    count and the timings (``prefill`` runs from the first request for a token to the first token).
    """
    reply = ReplyText(tokenizer, request.params.stop or ())
    result.finish_reason = "length"
    started = time.perf_counter()
    first_token_at = None
    try:
        for token in tokens:
            if first_token_at is None:
                first_token_at = result.first_token(started)
            if token in eos_token_ids:
                result.finish_reason = "stop"
                break
            piece = reply.add(token)
            if piece:
                yield piece
            if reply.stopped:
                result.finish_reason = "stop"
                break
        else:
            if request.cancelled:
                result.finish_reason = "cancelled"
        piece = reply.finish()
        if piece:
            yield piece
    except GeneratorExit:
        result.finish_reason = "cancelled"
        raise
    finally:
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
        result.close(reply, first_token_at)
