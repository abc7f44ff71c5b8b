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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from transformers import Cache, GenerationConfig
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
from .batching import Chooser, DecodeSlots

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

#: The most tokens (padding included) one batched prefill of several short prompts runs at once.
PREFILL_BATCH_TOKENS = 1024


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
        prompt.update({k: v.to(device) for k, v in request.model_inputs.items()})
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
            stop_strings=list(params.stop or ()) or None, use_cache=True)

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
        if length <= PREFILL_CHUNK or "pixel_values" in kwargs:  # a video LLM's images go in one prefill
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

    def decode_slots(self, size: int) -> TransformersSlots:
        return TransformersSlots(self, size)


class _RowCache(Cache):
    """The KV cache one batched step sees: it writes each row's new key and value at that row's own position
    in the slots' buffers and hands attention every row's keys and values up to ``width``."""

    def __init__(self, slots: TransformersSlots, positions: torch.Tensor, width: int) -> None:
        super().__init__(layers=[])
        self.slots = slots
        self.positions = positions  # (B,)
        self.width = width
        self.rows = torch.arange(positions.shape[0])

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.slots.keys[layer_idx], self.slots.values[layer_idx]  # (S, H, cap, d)
        batch = self.positions.shape[0]
        keys[self.rows, :, self.positions] = key_states[:, :, 0]  # (B, H, d)
        values[self.rows, :, self.positions] = value_states[:, :, 0]
        return keys[:batch, :, :self.width], values[:batch, :, :self.width]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.width - 1


class TransformersSlots(DecodeSlots):
    """A preallocated KV cache of ``size`` rows for the transformers engine's LLM.

    Per layer, keys and values are (size, kv heads, capacity, head dim) buffers; the occupied slots are
    always rows 0..B-1 (a released row is filled with the last one), each with its own length. Prompts that
    arrive together are prefilled together (:meth:`prefill_many`; a long one alone, in chunks of
    :data:`PREFILL_CHUNK`) into a DynamicCache and copied into their rows; a step runs the LLM once over
    all B rows with per-row positions and an attention mask that hides each row's unused tail. The capacity doubles when a row needs more.
    """

    def __init__(self, engine: TransformersEngine, size: int) -> None:
        self.engine = engine
        self.size = size
        self.tokenizer = engine.tokenizer
        self.eos_token_ids = frozenset(engine.eos_token_ids)
        self.keys: list[torch.Tensor] = []  # per layer (size, H, capacity, d); made by the first prefill
        self.values: list[torch.Tensor] = []
        self.lengths = torch.zeros(size, dtype=torch.long)  # tokens cached in each row
        self.rows: list[int] = []  # the slot of each occupied row, in row order

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def chooser(self, request: EngineRequest) -> Chooser:
        params = request.params
        device = next(self.engine.llm.parameters()).device
        prompt = [] if request.input_ids is None else [int(t) for t in request.input_ids.tolist()]
        processors = self.engine._logits_processors(params, len(prompt), device)
        if params.ignore_eos:  # as generate's min_new_tokens = max_new_tokens
            processors.insert(0, SuppressTokensLogitsProcessor(sorted(self.eos_token_ids), device=str(device)))

        def choose(logits: torch.Tensor, generated: Sequence[int]) -> int:
            ids = torch.tensor([prompt + list(generated)], dtype=torch.long, device=device)
            return int(processors(ids, logits[None].float()).argmax())

        return choose

    def prefill(self, slot: int, request: EngineRequest) -> torch.Tensor | None:
        from transformers import DynamicCache

        key, prompt = self._prompt(request)  # (1, L, D) or (1, L)
        length = prompt.shape[1]
        cache = DynamicCache()
        with torch.inference_mode():
            for start in range(0, length, PREFILL_CHUNK):
                if request.cancelled:
                    return None
                out = self.engine.llm(**{key: prompt[:, start:start + PREFILL_CHUNK]}, past_key_values=cache,
                                      use_cache=True, logits_to_keep=1)
            self._store(slot, cache, 0, length)
        return out.logits[0, -1]

    def prefill_many(self, requests: Sequence[tuple[int, EngineRequest]]) -> list[torch.Tensor | BaseException | None]:
        """Prompts of up to :data:`PREFILL_CHUNK` tokens of the same kind (embeddings or ids) are prefilled
        together: right-padded into one forward of at most :data:`PREFILL_BATCH_TOKENS` padded tokens, whose
        causal attention keeps every row's real tokens from seeing the padding after them, so each row's cache
        and last logits are those of its prompt alone. Longer prompts are prefilled alone, in chunks."""
        results: list[torch.Tensor | BaseException | None] = [None] * len(requests)
        short: dict[str, list[int]] = {}  # kind -> indices into requests
        for i, (slot, request) in enumerate(requests):
            if request.cancelled:
                continue
            if request.num_prompt_tokens > PREFILL_CHUNK:
                results[i] = super().prefill_many([(slot, request)])[0]  # alone, in chunks
            else:
                short.setdefault("inputs_embeds" if request.inputs_embeds is not None else "input_ids", []).append(i)
        for indices in short.values():
            for group in _pack(indices, [requests[i][1].num_prompt_tokens for i in indices]):
                try:
                    logits = self._prefill_together([requests[i] for i in group])
                except Exception as error:  # noqa: BLE001 - every request of the group hears of it
                    logits = [error] * len(group)
                for i, row in zip(group, logits):
                    results[i] = row
        return results

    def _prefill_together(self, requests: Sequence[tuple[int, EngineRequest]]) -> list[torch.Tensor]:
        """One forward over the right-padded prompts of ``requests`` (all of one kind); each one's last logits."""
        from transformers import DynamicCache

        if len(requests) == 1:
            return [self.prefill(*requests[0])]
        prompts = [self._prompt(request) for _, request in requests]
        key = prompts[0][0]
        lengths = [prompt.shape[1] for _, prompt in prompts]
        width = max(lengths)
        first = prompts[0][1]
        padded = first.new_zeros(len(prompts), width, *first.shape[2:])  # (B, W, D) or (B, W): zeros after each prompt
        for row, (_, prompt) in enumerate(prompts):
            padded[row, :prompt.shape[1]] = prompt[0]
        last = torch.tensor(lengths, device=padded.device)[:, None] - 1  # (B, 1) each row's last real position
        cache = DynamicCache()
        with torch.inference_mode():
            out = self.engine.llm(**{key: padded}, past_key_values=cache, use_cache=True, logits_to_keep=last)
            for row, ((slot, _), length) in enumerate(zip(requests, lengths)):
                self._store(slot, cache, row, length)
        return list(out.logits[:, -1])  # B rows of (V,)

    def _prompt(self, request: EngineRequest) -> tuple[str, torch.Tensor]:
        """The model's keyword for the prompt and the prompt as a batch of one: (1, L, D) or (1, L)."""
        if request.inputs_embeds is not None:
            key, prompt = "inputs_embeds", request.inputs_embeds[None]  # (1, L, D)
        else:
            key, prompt = "input_ids", request.input_ids[None]  # type: ignore[index]  # (1, L)
        return key, prompt.to(next(self.engine.llm.parameters()).device)

    def _store(self, slot: int, cache: Any, index: int, length: int) -> None:
        """Copy the first ``length`` positions of batch row ``index`` of a prefill's ``cache`` into the next row
        of the buffers, which ``slot`` now holds (inside inference mode)."""
        if not self.keys:
            device = cache.layers[0].keys.device
            self.keys = [torch.zeros(self.size, *layer.keys.shape[1:2], 256, layer.keys.shape[3],
                                     dtype=layer.keys.dtype, device=device) for layer in cache.layers]
            self.values = [torch.zeros_like(k) for k in self.keys]
        self._reserve(length + 1)
        row = len(self.rows)
        for i, layer in enumerate(cache.layers):
            self.keys[i][row, :, :length] = layer.keys[index, :, :length]
            self.values[i][row, :, :length] = layer.values[index, :, :length]
        self.rows.append(slot)
        self.lengths[row] = length

    def step(self, tokens: Mapping[int, int]) -> dict[int, torch.Tensor]:
        batch = len(self.rows)
        device = self.keys[0].device
        positions = self.lengths[:batch].clone()  # (B,) where each row's new token goes
        width = int(positions.max()) + 1
        self._reserve(width)
        ids = torch.tensor([[tokens[slot]] for slot in self.rows], dtype=torch.long, device=device)  # (B, 1)
        visible = torch.arange(width)[None, :] <= positions[:, None]  # (B, width)
        dtype = self.keys[0].dtype
        mask = torch.zeros(batch, 1, 1, width, dtype=dtype).masked_fill(~visible[:, None, None, :],
                                                                         torch.finfo(dtype).min)
        with torch.inference_mode():
            out = self.engine.llm(input_ids=ids, position_ids=positions[:, None].to(device),
                                  attention_mask=mask.to(device), past_key_values=_RowCache(self, positions, width),
                                  use_cache=True)
        self.lengths[:batch] += 1
        logits = out.logits[:, -1]  # (B, V)
        return {slot: logits[row] for row, slot in enumerate(self.rows)}

    def release(self, slot: int) -> None:
        if slot not in self.rows:  # its prefill did not finish
            return
        row, last = self.rows.index(slot), len(self.rows) - 1
        if row != last:  # the last row moves into the freed one, so rows 0..B-1 stay the occupied ones
            used = int(self.lengths[last])
            with torch.inference_mode():  # the buffers are inference tensors
                for buffers in (self.keys, self.values):
                    for layer in buffers:
                        layer[row, :, :used] = layer[last, :, :used]
            self.lengths[row] = self.lengths[last]
            self.rows[row] = self.rows[last]
        self.rows.pop()
        self.lengths[last] = 0

    def _reserve(self, length: int) -> None:
        """Make every row hold at least ``length`` tokens (doubling the capacity as needed)."""
        if length <= self.capacity:
            return
        capacity = max(length, 2 * self.capacity)
        with torch.inference_mode():
            self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        for buffers in (self.keys, self.values):
            for i, layer in enumerate(buffers):
                grown = layer.new_zeros(*layer.shape[:2], capacity, layer.shape[3])
                grown[:, :, :layer.shape[2]] = layer
                buffers[i] = grown


def _pack(indices: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
    """``indices`` in groups prefilled together: shortest first, a group growing while its padded size stays
    within :data:`PREFILL_BATCH_TOKENS` and its padding no more than its real tokens."""
    groups: list[list[int]] = []
    group: list[int] = []
    total = 0
    for length, index in sorted(zip(lengths, indices)):
        size = (len(group) + 1) * length  # sorted: the newcomer is the longest
        if group and (size > PREFILL_BATCH_TOKENS or size > 2 * (total + length)):
            groups.append(group)
            group, total = [], 0
        group.append(index)
        total += length
    if group:
        groups.append(group)
    return groups
