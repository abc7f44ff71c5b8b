"""The fast CPU engine: llama.cpp through llama-cpp-python.

The LLM runs from its GGUF (the packaged SmolLM2 Q4_1 file as shipped) with the model's LoRA applied by
llama.cpp from a GGUF adapter, or from one GGUF with the LoRA merged into its weights (``gguf="q8_0"``
or ``"f16"``: no adapter arithmetic per token, but requantised weights); both files are written
by :mod:`.gguf_export` once and cached. The prompt goes in as token
ids, so this engine serves models whose video tokens are words (``abstractor.word_tokens``, the offline
default); a model whose video tokens are free vectors needs the ``transformers`` engine.

Decoding is this module's own loop over llama.cpp's prefill and single-token steps: the logits of each
step are read from llama.cpp and chosen from here (greedy, or temperature/top-p sampling with the
request's own seeded generator; repetition penalty over the reply; openings the reply may not start
with), so the engines differ only in the arithmetic of the LLM. The KV cache keeps the longest common
prefix of consecutive prompts (a conversation's earlier turns are not computed again).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelLoadError
from .base import DecodeResult, EngineRequest, GenerationParams, LLMEngine, TextStream, stream_reply
from .batching import Chooser, DecodeSlots

INSTALL_HINT = ("the llamacpp engine needs llama-cpp-python: `make llamacpp` builds it for this CPU "
                "(or pip install llama-cpp-python)")


def is_available() -> bool:
    """Whether llama-cpp-python is installed (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _weights_digest(model: Any) -> str:
    """A short hash of the model's LoRA weights, naming the GGUF files written from them (retrained weights
    get new files)."""
    import hashlib

    from .gguf_export import lora_tensors

    digest = hashlib.sha256()
    for name, data in sorted(lora_tensors(model.llm).items()):
        digest.update(name.encode())
        digest.update(data.tobytes())
    return digest.hexdigest()[:16]


def lora_adapter_for(model: Any) -> Path:
    """The model's LoRA as a GGUF adapter in the cache (written on first use)."""
    from ..llm.loading import cache_root
    from .gguf_export import write_lora_adapter

    path = cache_root() / "gguf" / f"lora-{_weights_digest(model)}.gguf"
    return path if path.is_file() else write_lora_adapter(model.llm, path)


def merged_gguf_for(model: Any, source: str | Path, quant: str) -> Path:
    """The model's LLM with its LoRA merged, as one GGUF of type ``quant`` in the cache (written on first
    use from ``source``, the LLM's own GGUF)."""
    from ..llm.loading import cache_root
    from .gguf_export import write_merged_gguf

    path = cache_root() / "gguf" / f"merged-{Path(source).stem}-{_weights_digest(model)}-{quant}.gguf"
    return path if path.is_file() else write_merged_gguf(model.llm, source, path, quant)


class LogitsChooser:
    """Chooses each next token from a step's logits, the same way for every llama.cpp request.

    Openings the reply may not begin with are masked, repeated tokens of the reply are penalised
    (transformers' rule: positive logits divided, negative multiplied), then the token is the argmax
    (temperature 0) or drawn from the temperature-scaled distribution cut to its top-p nucleus.
    """

    def __init__(self, params: GenerationParams, banned: Iterable[int] = ()) -> None:
        self.params = params
        self.banned = np.fromiter(banned, dtype=np.int64)
        self.rng = np.random.default_rng(params.seed) if params.temperature > 0 else None

    def __call__(self, logits: np.ndarray, generated: Sequence[int]) -> int:
        logits = logits.astype(np.float64, copy=True)
        logits[self.banned] = -np.inf
        done = tuple(generated)
        for seq in self.params.suppress_openings:
            if len(done) == len(seq) - 1 and done == seq[:-1]:
                logits[seq[-1]] = -np.inf
        penalty = self.params.repetition_penalty
        if penalty != 1.0 and done:
            idx = np.fromiter(set(done), dtype=np.int64)
            vals = logits[idx]
            logits[idx] = np.where(vals > 0, vals / penalty, vals * penalty)
        if self.rng is None:
            return int(np.argmax(logits))
        scaled = logits / self.params.temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self.params.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            before = np.cumsum(probs[order]) - probs[order]  # mass of the tokens ranked above each one
            keep = order[before < self.params.top_p]
            nucleus = np.zeros_like(probs)
            nucleus[keep] = probs[keep]
            probs = nucleus / nucleus.sum()
        return int(self.rng.choice(len(probs), p=probs))


class LlamaCppEngine(LLMEngine):
    """Decodes with llama.cpp from ``model_path`` (a GGUF) and an optional GGUF LoRA adapter.

    ``tokenizer`` (the model's, whose ids match the GGUF vocabulary) turns tokens into text;
    ``eos_token_ids`` end a reply. One request decodes at a time (a lock guards the context).
    """

    name = "llamacpp"
    accepts_embeddings = False

    def __init__(self, model_path: str | Path, tokenizer: Any, *, eos_token_ids: Iterable[int],
                 lora_path: str | Path | None = None, n_ctx: int = 4096, n_threads: int | None = None,
                 n_batch: int = 512) -> None:
        if not is_available():
            raise ModelLoadError(INSTALL_HINT)
        import llama_cpp

        self._llama_cpp = llama_cpp
        if n_threads is None:
            import torch

            n_threads = torch.get_num_threads()
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(model_path), lora_path=str(lora_path) if lora_path else None, n_ctx=n_ctx,
                n_batch=n_batch, n_ubatch=n_batch, n_threads=n_threads, n_threads_batch=n_threads,
                logits_all=False, verbose=False)
        except (ValueError, RuntimeError) as error:
            raise ModelLoadError(f"llama.cpp could not load {model_path}"
                                 f"{' with adapter ' + str(lora_path) if lora_path else ''}: {error}") from error
        self.tokenizer = tokenizer
        self.eos_token_ids = {int(t) for t in eos_token_ids}
        self.n_ctx = n_ctx
        self.n_vocab = self.llama.n_vocab()
        self._lock = threading.Lock()

    def generate(self, request: EngineRequest) -> TextStream:
        if request.input_ids is None:
            raise ConfigError("the llamacpp engine takes prompts as token ids; this model's video tokens are "
                              "vectors, not words (abstractor.word_tokens is off): use the transformers engine")
        result = DecodeResult(num_prompt_tokens=request.num_prompt_tokens, timings=dict(request.timings))
        pieces = stream_reply(self._tokens(request), self.tokenizer, request, result, self.eos_token_ids)
        return TextStream(pieces, result)

    # -- the decode --------------------------------------------------------------------------------
    def _prefill(self, prompt: list[int], request: EngineRequest) -> bool:
        """Bring the KV cache to ``prompt``, computing only what differs from the cached tokens, a batch at a
        time; False if the request was cancelled meanwhile."""
        llama = self.llama
        common = min(_common_prefix(llama.input_ids[: llama.n_tokens].tolist(), prompt), len(prompt) - 1)  # the last prompt token is always run: its logits are needed
        llama.n_tokens = common  # the next eval drops the cache past `common` first
        for start in range(common, len(prompt), llama.n_batch):
            if request.cancelled:
                return False
            llama.eval(prompt[start:start + llama.n_batch])
        return True

    def check_context(self, request: EngineRequest) -> None:
        """A ConfigError if the prompt and max_new_tokens do not fit one sequence's context."""
        if request.num_prompt_tokens + request.params.max_new_tokens > self.n_ctx:
            raise ConfigError(f"the prompt ({request.num_prompt_tokens} tokens) and max_new_tokens "
                              f"({request.params.max_new_tokens}) exceed the llama.cpp context of {self.n_ctx} tokens")

    def clear_cache(self) -> None:
        """Forget the cached prompt, so the next request is prefilled from scratch."""
        with self._lock:
            self.llama.reset()  # no cached tokens: the next eval drops the whole KV cache first

    def _logits(self) -> np.ndarray:
        pointer = self._llama_cpp.llama_get_logits(self.llama.ctx)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def _tokens(self, request: EngineRequest) -> Iterator[int]:
        """The new tokens, chosen from each step's logits; holds the context until closed or done."""
        params = request.params
        prompt = [int(t) for t in request.input_ids.tolist()]  # type: ignore[union-attr]
        self.check_context(request)
        choose = LogitsChooser(params, banned=self.eos_token_ids if params.ignore_eos else ())
        generated: list[int] = []
        with self._lock:
            if not self._prefill(prompt, request):
                return
            while len(generated) < params.max_new_tokens and not request.cancelled:
                generated.append(choose(self._logits(), generated))
                yield generated[-1]
                if len(generated) < params.max_new_tokens:
                    self.llama.eval(generated[-1:])

    def decode_slots(self, size: int) -> LlamaCppSlots:
        return LlamaCppSlots(self, size)


class LlamaCppSlots(DecodeSlots):
    """``size`` sequences in one llama.cpp context of their own (sequence id = slot), each with the engine's
    context length. A prompt is prefilled into its slot a batch at a time, after the longest prefix it shares
    with what the slot held before (a free slot keeps its cache, and a request gets the slot that matches it
    best); a step is one ``llama_decode`` of a batch with one token per occupied slot."""

    accepts_embeddings = False

    def __init__(self, engine: LlamaCppEngine, size: int) -> None:
        llama_cpp = engine._llama_cpp
        self._llama_cpp = llama_cpp
        self.engine = engine
        self.size = size
        self.tokenizer = engine.tokenizer
        self.eos_token_ids = frozenset(engine.eos_token_ids)
        self.n_batch = engine.llama.n_batch
        params = llama_cpp.llama_context_params.from_buffer_copy(engine.llama.context_params)
        params.n_seq_max = size
        params.n_ctx = size * engine.n_ctx
        params.kv_unified = False  # each sequence its own n_ctx
        self.ctx = llama_cpp.llama_init_from_model(engine.llama.model, params)
        if self.ctx is None:
            raise ModelLoadError(f"llama.cpp could not make a context of {size} sequences")
        self._adapter = None
        if engine.llama.lora_path:
            self._adapter = llama_cpp.llama_adapter_lora_init(engine.llama.model, engine.llama.lora_path.encode())
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapter)
            scales = (ctypes.c_float * 1)(engine.llama.lora_scale)
            if self._adapter is None or llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales):
                raise ModelLoadError(f"llama.cpp could not apply the adapter {engine.llama.lora_path}")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(max(self.n_batch, size), 0, 1)
        self.cached: list[list[int]] = [[] for _ in range(size)]  # the tokens in each slot's KV cache

    def __del__(self) -> None:
        llama_cpp = getattr(self, "_llama_cpp", None)
        if llama_cpp is not None and getattr(self, "ctx", None) is not None:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            self.ctx = None

    def check(self, request: EngineRequest) -> None:
        if request.input_ids is None:
            raise ConfigError("the llamacpp engine takes prompts as token ids; this model's video tokens are "
                              "vectors, not words (abstractor.word_tokens is off): use the transformers engine")
        self.engine.check_context(request)

    def pick(self, free: Sequence[int], request: EngineRequest) -> int:
        prompt = request.input_ids.tolist()  # type: ignore[union-attr]
        return max(reversed(free), key=lambda slot: _common_prefix(self.cached[slot], prompt))

    def chooser(self, request: EngineRequest) -> Chooser:
        choose = LogitsChooser(request.params, banned=self.eos_token_ids if request.params.ignore_eos else ())
        return lambda logits, generated: choose(logits, generated)

    def prefill(self, slot: int, request: EngineRequest) -> np.ndarray | None:
        prompt = [int(t) for t in request.input_ids.tolist()]  # type: ignore[union-attr]
        common = min(_common_prefix(self.cached[slot], prompt), len(prompt) - 1)  # the last token always runs
        self._llama_cpp.llama_memory_seq_rm(self.memory, slot, common, -1)
        self.cached[slot] = prompt[:common]
        for start in range(common, len(prompt), self.n_batch):
            if request.cancelled:
                return None
            chunk = prompt[start:start + self.n_batch]
            last = start + len(chunk) == len(prompt)
            self._decode([(token, start + i, slot, last and i == len(chunk) - 1) for i, token in enumerate(chunk)])
            self.cached[slot].extend(chunk)
        return self._logits(len(chunk) - 1)

    def step(self, tokens: Mapping[int, int]) -> dict[int, np.ndarray]:
        slots = list(tokens)
        self._decode([(tokens[slot], len(self.cached[slot]), slot, True) for slot in slots])
        for slot in slots:
            self.cached[slot].append(tokens[slot])
        return {slot: self._logits(i) for i, slot in enumerate(slots)}

    def release(self, slot: int) -> None:
        pass  # the slot keeps its cache for a later prompt with the same start

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) entries."""
        batch = self.batch
        batch.n_tokens = len(entries)
        for i, (token, position, sequence, wants_logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
            batch.seq_id[i][0], batch.logits[i] = sequence, wants_logits
        status = self._llama_cpp.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed (status {status}) on a batch of {len(entries)} tokens")

    def _logits(self, index: int) -> np.ndarray:
        pointer = self._llama_cpp.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.engine.n_vocab,)).copy()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
