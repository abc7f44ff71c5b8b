"""The reference engine: transformers' ``generate`` with logits processors, ``stop_strings`` and a streamer.

``generate`` runs in a worker thread and hands each new token to a streamer; the caller's thread turns
tokens into text (:class:`~.base.ReplyText`) as it reads them. Stopping the read (``close``, a
``with`` block, or dropping the stream) sets a flag that a stopping criterion checks after every token,
and waits for the thread, so no decode keeps running for a reader that left.

Sampling draws from a ``torch.Generator`` of the request's own (seeded with ``params.seed``, or at
random), never from torch's global generator: a seed reproduces a reply whatever else the process runs.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from transformers import GenerationConfig
from transformers.generation import (
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.streamers import BaseStreamer

from .base import DecodeResult, EngineRequest, GenerationParams, LLMEngine, TextStream, stream_reply

_END = object()  # the worker's last message on the token queue


class SuppressOpenings(LogitsProcessor):
    """Keeps the reply from beginning with any of ``openings`` (token id sequences): once the reply is a
    sequence's tokens but its last, that last token is masked. ``prompt_length`` tokens of
    ``input_ids`` are the prompt."""

    def __init__(self, openings: Sequence[Sequence[int]], prompt_length: int) -> None:
        self.openings = [tuple(seq) for seq in openings]
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = tuple(input_ids[0, self.prompt_length:].tolist())
        for seq in self.openings:
            if len(generated) == len(seq) - 1 and generated == seq[:-1]:
                scores[:, seq[-1]] = -math.inf
        return scores


class SampleWith(LogitsProcessor):
    """Draws the next token from softmax(scores) with ``generator`` and leaves only that token, so the
    greedy step of ``generate`` picks it (the last processor of a sampling request)."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        choice = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=self.generator)
        return torch.full_like(scores, -math.inf).scatter(1, choice, 0.0)


#: Prompts longer than this are prefilled in chunks of it, so a cancel can stop a long prefill between chunks.
PREFILL_CHUNK = 512


class _Cancelled(StoppingCriteria):
    def __init__(self, *flags: threading.Event | None) -> None:
        self.flags = [f for f in flags if f is not None]

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        stop = any(f.is_set() for f in self.flags)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class _TokenQueue(BaseStreamer):
    """Receives ``generate``'s new tokens (never the prompt) and queues them for the reading thread."""

    def __init__(self, tokens: queue.Queue) -> None:
        self.tokens = tokens
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first pushes the prompt ids (empty for an embeddings prompt)
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.tokens.put(token)

    def end(self) -> None:
        pass


class TransformersEngine(LLMEngine):
    """Decodes with ``llm.generate`` (any transformers causal LM, with or without a peft adapter).

    ``eos_token_ids`` end a reply; ``banned_token_ids`` are never generated (the video placeholder).
    """

    name = "transformers"

    def __init__(self, llm: Any, tokenizer: Any, *, eos_token_ids: Iterable[int],
                 banned_token_ids: Iterable[int] = ()) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.eos_token_ids = sorted({int(t) for t in eos_token_ids})
        self.banned_token_ids = sorted({int(t) for t in banned_token_ids})

    def generate(self, request: EngineRequest) -> TextStream:
        result = DecodeResult(num_prompt_tokens=request.num_prompt_tokens, timings=dict(request.timings))
        pieces = stream_reply(self._tokens(request), self.tokenizer, request, result, self.eos_token_ids)
        return TextStream(pieces, result)

    # -- the decode --------------------------------------------------------------------------------
    def _generate_kwargs(self, request: EngineRequest, cancel: threading.Event,
                         tokens: queue.Queue) -> dict[str, Any]:
        params = request.params
        device = next(self.llm.parameters()).device
        if request.inputs_embeds is not None:
            prompt: dict[str, Any] = {"inputs_embeds": request.inputs_embeds[None].to(device)}
            prompt_length = 0  # generate's input_ids hold only the new tokens
        else:
            prompt = {"input_ids": request.input_ids[None].to(device)}  # type: ignore[index]
            prompt_length = request.num_prompt_tokens
        prompt["attention_mask"] = torch.ones((1, request.num_prompt_tokens), dtype=torch.long, device=device)
        return {
            **prompt,
            "generation_config": self._generation_config(params),
            "logits_processor": self._logits_processors(params, prompt_length, device),
            "stopping_criteria": StoppingCriteriaList([_Cancelled(cancel, request.cancel)]),
            "streamer": _TokenQueue(tokens),
            "tokenizer": self.tokenizer,  # for stop_strings
        }

    def _generation_config(self, params: GenerationParams) -> GenerationConfig:
        # Sampling happens in SampleWith, so generate itself is always greedy; its own warpers stay off.
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1, temperature=1.0, top_p=1.0,
            top_k=None, repetition_penalty=1.0, eos_token_id=self.eos_token_ids or None,
            min_new_tokens=params.max_new_tokens if params.ignore_eos else None,
            pad_token_id=self.eos_token_ids[0] if self.eos_token_ids else None,
            stop_strings=list(params.stop) or None, use_cache=True)

    def _logits_processors(self, params: GenerationParams, prompt_length: int,
                           device: torch.device) -> LogitsProcessorList:
        processors: list[LogitsProcessor] = []
        if self.banned_token_ids:
            processors.append(SuppressTokensLogitsProcessor(self.banned_token_ids, device=str(device)))
        if params.suppress_openings:
            processors.append(SuppressOpenings(params.suppress_openings, prompt_length))
        if params.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty,
                                                               prompt_ignore_length=prompt_length or None))
        if params.temperature > 0:
            generator = torch.Generator(device=device)
            if params.seed is None:
                generator.seed()
            else:
                generator.manual_seed(params.seed)
            processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
            processors.append(SampleWith(generator))
        return LogitsProcessorList(processors)

    def _prefill_in_chunks(self, kwargs: dict[str, Any], cancelled: Any) -> bool:
        """Run all but the last chunk of a long prompt into a KV cache that ``generate`` then continues from,
        checking ``cancelled()`` between chunks; False if it was cancelled. Short prompts are left to generate."""
        from transformers import DynamicCache

        prompt = kwargs.get("inputs_embeds", kwargs.get("input_ids"))
        length = prompt.shape[1]
        if length <= PREFILL_CHUNK:
            return not cancelled()
        key = "inputs_embeds" if "inputs_embeds" in kwargs else "input_ids"
        cache = DynamicCache()
        for start in range(0, length - 1, PREFILL_CHUNK):
            end = min(start + PREFILL_CHUNK, length - 1)  # the last token is left for generate's first step
            if cancelled():
                return False
            self.llm(**{key: prompt[:, start:end]}, attention_mask=kwargs["attention_mask"][:, :end],
                     past_key_values=cache, use_cache=True, logits_to_keep=1)
        kwargs["past_key_values"] = cache
        return not cancelled()

    def _tokens(self, request: EngineRequest) -> Iterator[int]:
        """The new tokens as ``generate`` picks them; closing the iterator cancels the decode and waits
        for the worker thread."""
        tokens: queue.Queue = queue.Queue()
        cancel = threading.Event()
        failure: list[BaseException] = []
        kwargs = self._generate_kwargs(request, cancel, tokens)

        def work() -> None:
            try:
                with torch.inference_mode():
                    if self._prefill_in_chunks(kwargs, lambda: cancel.is_set() or request.cancelled):
                        self.llm.generate(**kwargs)
            except BaseException as error:  # handed to the reading thread, which raises it
                failure.append(error)
            finally:
                tokens.put(_END)

        worker = threading.Thread(target=work, name="gpt4video-decode", daemon=True)
        worker.start()
        try:
            while (token := tokens.get()) is not _END:
                yield token
            if failure:
                raise failure[0]
        finally:
            cancel.set()
            worker.join()
