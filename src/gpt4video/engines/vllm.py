"""The GPU engine to scale out: vLLM, with the prompt as embeddings and the LoRA as a PEFT adapter.

vLLM serves the LLM's base weights (the directory or hub id the model was built from) and applies the
model's LoRA per request from a PEFT adapter folder (:func:`peft_adapter_for`, written once to the
cache). The prompt goes in as the very embeddings the transformers engine is fed (the
chat template's token embeddings with each video's tokens in place: ``{"prompt_embeds": (L, D)}``, vLLM's
``enable_prompt_embeds``), so any model, also one whose video tokens are free vectors, runs here.

What each engine must do the same way is done by this module, not by vLLM's own options:

- **Text.** vLLM starts without a tokenizer (``skip_tokenizer_init``) and hands back token ids; the
  model's tokenizer turns them into text through :func:`~.base.stream_reply`, which also cuts at stop
  strings and ends the request (so the text is the other engines' for the same tokens).
- **Token rules.** The video placeholder (and with ``ignore_eos`` the end tokens) is never chosen, the reply
  may not begin with a blocked opening, and the repetition penalty divides the scores of tokens of the
  *reply* (not the prompt, which is embeddings here). vLLM's ``bad_words`` would block a sequence anywhere
  in the reply, not only at its start, and its ``repetition_penalty`` also counts the prompt's tokens, so
  both are done by :class:`ReplyRules`, a per-request function that vLLM runs through a logits processor
  of ours (:mod:`.vllm_logits`, named in the engine's ``logits_processors``), before temperature and top-p,
  as the other engines do.
- **Sampling.** Temperature (0 = greedy), top-p and the seed are vLLM's own (``SamplingParams``); a seed
  reproduces a reply on vLLM, but vLLM's random draws are not the other engines' ones.

Streaming and cancellation: one scheduler thread (:class:`~.batching.ScheduledEngine`) owns vLLM's
``LLMEngine`` (its ``add_request``, ``step`` and ``abort_request``); requests from any number of threads
are batched by vLLM, each reading its tokens from its own queue. A request whose reader leaves, whose reply is complete, or whose ``cancel`` is set is
aborted at the next step.

vLLM needs a CUDA GPU and its own install (``pip install vllm``, which pins its own torch): the factory
raises one :class:`~gpt4video.errors.ModelLoadError` naming what is missing (:func:`missing`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ModelLoadError
from .base import EngineRequest, GenerationParams
from .batching import _END, ScheduledEngine

log = logging.getLogger("gpt4video.engines")

INSTALL_HINT = ("the vllm engine needs vLLM, which is not installed here: pip install vllm (on a machine "
                "with a CUDA GPU; it brings its own torch, so give it its own environment)")
NO_GPU_HINT = ("the vllm engine needs a CUDA GPU, and torch finds none here "
               "(on a CPU use the transformers or llamacpp engine)")

#: where the per-request token rules travel in ``SamplingParams.extra_args``
RULES_KEY = "gpt4video_rules"
#: the logits processor that applies them, as vLLM loads it (``module:Class``) in its engine process
RULES_PROCESSOR = "gpt4video.engines.vllm_logits:ReplyRulesProcessor"
#: the LoRA ranks vLLM accepts as ``max_lora_rank`` (its ``MaxLoRARanks``)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)



def missing() -> str | None:
    """What this machine lacks to run the vllm engine (one line), or None if nothing is missing.

    vLLM is looked for without importing it (importing it takes seconds and starts its plugins)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return INSTALL_HINT
    if not torch.cuda.is_available():
        return NO_GPU_HINT
    return None


# -- what vLLM is given ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplyRules:
    """The token rules of one request, applied to its next-token logits (V,) given the reply's tokens so far.

    ``banned`` are never chosen; once the reply is an ``openings`` sequence's tokens but its last, that last
    token is masked; tokens already in the reply have positive scores divided and negative ones multiplied by
    ``repetition_penalty``. The same rules, in the same order, as the transformers engine's logits processors
    (a token id beyond the logits, such as a placeholder the base vocabulary lacks, is skipped).
    """

    banned: tuple[int, ...] = ()
    openings: tuple[tuple[int, ...], ...] = ()
    repetition_penalty: float = 1.0

    @classmethod
    def for_request(cls, params: GenerationParams, banned: Iterable[int] = ()) -> ReplyRules:
        return cls(banned=tuple(sorted({int(t) for t in banned})),
                   openings=tuple(tuple(int(t) for t in seq) for seq in params.suppress_openings),
                   repetition_penalty=float(params.repetition_penalty))

    @property
    def active(self) -> bool:
        return bool(self.banned or self.openings or self.repetition_penalty != 1.0)

    def to_args(self) -> dict[str, Any]:
        """Plain lists and a float (what ``SamplingParams.extra_args`` carries to vLLM's engine process)."""
        return {"banned": list(self.banned), "openings": [list(seq) for seq in self.openings],
                "repetition_penalty": self.repetition_penalty}

    @classmethod
    def from_extra_args(cls, extra_args: Mapping[str, Any] | None) -> ReplyRules | None:
        """The rules a request carries in its ``extra_args``; None if it carries none."""
        args = (extra_args or {}).get(RULES_KEY)
        if not args:
            return None
        return cls(banned=tuple(args["banned"]), openings=tuple(tuple(seq) for seq in args["openings"]),
                   repetition_penalty=float(args["repetition_penalty"]))

    def __call__(self, output_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        banned = [t for t in self.banned if t < vocab]
        if banned:
            logits[banned] = -math.inf
        done = tuple(output_ids)
        for seq in self.openings:
            if len(done) == len(seq) - 1 and done == seq[:-1] and seq[-1] < vocab:
                logits[seq[-1]] = -math.inf
        if self.repetition_penalty != 1.0 and done:
            seen = torch.tensor(sorted(set(done)), dtype=torch.long, device=logits.device)
            scores = logits[seen]
            logits[seen] = torch.where(scores > 0, scores / self.repetition_penalty,
                                       scores * self.repetition_penalty)
        return logits


def sampling_arguments(params: GenerationParams, *, eos_token_ids: Iterable[int],
                       banned_token_ids: Iterable[int] = ()) -> dict[str, Any]:
    """The keyword arguments of vLLM's ``SamplingParams`` for ``params``.

    Stop strings are not among them: the text is made and cut here (:func:`~.base.stream_reply`), which ends
    the request; the end tokens stop vLLM as ``stop_token_ids``. With ``ignore_eos`` the end tokens are
    banned instead, so the reply runs to ``max_new_tokens``."""
    eos = sorted({int(t) for t in eos_token_ids})
    banned = [*banned_token_ids, *(eos if params.ignore_eos else ())]
    rules = ReplyRules.for_request(params, banned)
    return {
        "n": 1,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,  # 0 is greedy in vLLM too
        "top_p": params.top_p,
        "top_k": 0,  # no top-k cut (GenerationParams has none)
        "seed": params.seed,
        "repetition_penalty": 1.0,  # over the reply only, by ReplyRules
        "stop_token_ids": [] if params.ignore_eos else eos,
        "ignore_eos": params.ignore_eos,
        "detokenize": False,  # vLLM has no tokenizer here; the model's makes the text
        "extra_args": {RULES_KEY: rules.to_args()} if rules.active else None,
    }


def lora_rank_limit(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ConfigError(f"a LoRA of rank {rank} is more than vLLM serves (at most {VLLM_LORA_RANKS[-1]})")


def engine_arguments(model_path: str, *, dtype: str = "auto", lora_rank: int | None = None,
                     max_model_len: int | None = None, gpu_memory_utilization: float = 0.8) -> dict[str, Any]:
    """The keyword arguments of vLLM's ``EngineArgs`` for the base LLM at ``model_path`` (a directory or hub
    id); ``lora_rank``: the rank of the adapter it will be asked to apply (None: no LoRA)."""
    args: dict[str, Any] = {
        "model": model_path,
        "dtype": dtype,
        "enable_prompt_embeds": True,
        "skip_tokenizer_init": True,
        "logits_processors": [RULES_PROCESSOR],
        "max_model_len": max_model_len,
        # the rest of the GPU is for the model's encoder, abstractor and embedding table
        "gpu_memory_utilization": gpu_memory_utilization,
    }
    if lora_rank is not None:
        args.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank_limit(lora_rank))
    return args


def vllm_prompt(request: EngineRequest) -> dict[str, Any]:
    """The request's prompt as vLLM takes it: ``{"prompt_embeds": (L, D)}`` on the CPU (vLLM moves it to its
    GPU and casts it to its dtype), or ``{"prompt_token_ids": [...]}`` for a prompt of token ids."""
    if request.inputs_embeds is not None:
        return {"prompt_embeds": request.inputs_embeds.detach().to("cpu")}
    return {"prompt_token_ids": [int(t) for t in request.input_ids.tolist()]}  # type: ignore[union-attr]


def _lora_digest(llm: Any) -> str:
    """A hash of the model's LoRA (its PEFT config and weights), naming its cached adapter folder."""
    from peft import get_peft_model_state_dict

    digest = hashlib.sha256()
    config = llm.peft_config["default"]
    digest.update(json.dumps({"r": config.r, "alpha": config.lora_alpha,
                              "targets": sorted(config.target_modules)}).encode())
    for name, tensor in sorted(get_peft_model_state_dict(llm, save_embedding_layers=False).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def peft_adapter_for(model: Any) -> Path:
    """The model's LoRA as a PEFT adapter folder in the cache (``adapter_config.json`` and
    ``adapter_model.safetensors``, what vLLM's ``LoRARequest`` loads), written on first use and named by a
    hash of the weights, so retrained weights get a new folder. Written to a temporary folder, then renamed."""
    from ..llm.loading import cache_root, write_cached_folder
    from ..llm.lora import save_lora

    target = cache_root() / "peft" / f"lora-{_lora_digest(model.llm)}"
    if (target / "adapter_model.safetensors").is_file():
        return target
    return write_cached_folder(target, lambda folder: save_lora(model.llm, folder))


# -- the engine --------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Live:
    """A request for vLLM: its arguments to ``add_request``, where its tokens go and how many were handed on."""

    request: EngineRequest
    arguments: tuple[Any, ...]  # (prompt, SamplingParams, LoRARequest or None)
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # tokens, then _END or an error
    sent: int = 0
    left: bool = False  # its reader stopped reading

    @property
    def over(self) -> bool:
        return self.left or self.request.cancelled


class VLLMEngine(ScheduledEngine):
    """Decodes with vLLM's ``LLMEngine`` from the base LLM at ``model_path`` and an optional PEFT adapter.

    ``tokenizer`` (the model's) turns tokens into text; ``eos_token_ids`` end a reply; ``banned_token_ids``
    are never generated (the video placeholder). Requests from several threads are decoded together by vLLM;
    its scheduler thread (:class:`~.batching.ScheduledEngine`) is the only one that calls vLLM.
    """

    name = "vllm"

    def __init__(self, model_path: str, tokenizer: Any, *, eos_token_ids: Iterable[int],
                 banned_token_ids: Iterable[int] = (), lora_path: str | Path | None = None,
                 lora_rank: int | None = None, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.8) -> None:
        problem = missing()
        if problem:
            raise ModelLoadError(problem)
        if lora_path is not None and lora_rank is None:
            raise ConfigError("a LoRA adapter for the vllm engine needs its rank (lora_rank)")
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError as error:
            raise ModelLoadError(f"vLLM is installed but does not import: {error}") from error
        super().__init__()
        self._vllm = vllm
        self.tokenizer = tokenizer
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        self.banned_token_ids = sorted({int(t) for t in banned_token_ids})
        self.lora_request = (LoRARequest(lora_name="gpt4video", lora_int_id=1, lora_path=str(lora_path))
                             if lora_path is not None else None)
        self.engine_args = engine_arguments(str(model_path), dtype=dtype, max_model_len=max_model_len,
                                            lora_rank=lora_rank if lora_path is not None else None,
                                            gpu_memory_utilization=gpu_memory_utilization)
        try:
            self.llm_engine = vllm.LLMEngine.from_engine_args(vllm.EngineArgs(**self.engine_args))
        except Exception as error:  # noqa: BLE001 - whatever vLLM raises, the model did not load
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelLoadError(f"vLLM could not load {model_path}: {first}") from error
        self._ids = itertools.count()
        self._live: dict[str, _Live] = {}  # request id -> request, while vLLM has it

    @classmethod
    def for_model(cls, model: Any) -> VLLMEngine:
        """The engine for a loaded GPT4Video: its LLM's base weights, its LoRA, its tokenizer and end tokens."""
        problem = missing()
        if problem:
            raise ModelLoadError(problem)
        from ..llm.loading import resolve_llm_source

        source, gguf_file = resolve_llm_source(model.config.llm)
        if gguf_file:
            raise ConfigError(f"the vllm engine reads the LLM's safetensors weights; {model.config.llm.model!r} "
                              f"is given as the GGUF file {gguf_file!r} (use a safetensors directory or hub id)")
        lora = model.config.llm.lora
        dtype = str(next(model.llm.parameters()).dtype).removeprefix("torch.")
        return cls(source, model.tokenizer, eos_token_ids=model.eos_token_ids,
                   banned_token_ids=[model.processor.video_token_id],
                   lora_path=peft_adapter_for(model) if lora is not None else None,
                   lora_rank=lora.r if lora is not None else None, dtype=dtype,
                   max_model_len=model.context_length)

    def request_arguments(self, request: EngineRequest) -> tuple[dict[str, Any], Any, Any]:
        """(prompt, SamplingParams, LoRARequest or None): what ``add_request`` gets for ``request``."""
        params = self._vllm.SamplingParams(**sampling_arguments(
            request.params, eos_token_ids=self.eos_token_ids, banned_token_ids=self.banned_token_ids))
        return vllm_prompt(request), params, self.lora_request

    def batched(self, size: int, pipeline_lock: threading.RLock | None = None) -> VLLMEngine:
        """vLLM batches the requests itself (as many as fit its KV cache): the server uses this engine as it is."""
        self.pipeline_lock = pipeline_lock
        return self

    # -- the scheduler thread: the only one that calls vLLM ------------------------------------------
    def _sequence(self, request: EngineRequest) -> _Live:
        return _Live(request, self.request_arguments(request))

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._closed or self._waiting or self._live or self.llm_engine.has_unfinished_requests()):
                    self._wake.wait()
                if self._closed:
                    break
                newcomers = list(self._waiting)
                self._waiting.clear()
            try:
                for live in newcomers:
                    self._admit(live)
                gone = [rid for rid, live in self._live.items() if live.over]
                if gone:  # cancelled, or the reader left: vLLM stops them
                    self.llm_engine.abort_request(gone)
                    for rid in gone:
                        self._live.pop(rid).tokens.put(_END)
                if self.llm_engine.has_unfinished_requests():
                    for output in self.llm_engine.step():  # one scheduler step of every request vLLM has
                        self._deliver(output)
            except Exception as error:  # noqa: BLE001 - the scheduler outlives a failing step
                log.exception("a vLLM step failed; ending its requests")
                self._end_all(error)
        self._end_all(_END)
        with self._wake:
            left, self._waiting = list(self._waiting), deque()
        for live in left:
            live.tokens.put(_END)

    def _admit(self, live: _Live) -> None:
        if live.over:
            live.tokens.put(_END)
            return
        request_id = f"gpt4video-{next(self._ids)}"
        prompt, params, lora = live.arguments
        try:
            self.llm_engine.add_request(request_id, prompt, params, lora_request=lora)
        except Exception as error:  # noqa: BLE001 - a request vLLM refuses fails alone
            live.tokens.put(error)
            return
        self._live[request_id] = live

    def _deliver(self, output: Any) -> None:
        live = self._live.get(output.request_id)
        if live is None:  # aborted meanwhile
            return
        token_ids = list(output.outputs[0].token_ids)  # cumulative: every token of the reply so far
        for token in token_ids[live.sent:]:
            live.tokens.put(int(token))
        live.sent = len(token_ids)
        if output.finished:
            del self._live[output.request_id]
            live.tokens.put(_END)

    def _end_all(self, item: Any) -> None:
        """End every request vLLM has with ``item`` (``_END`` or an error), aborting them in vLLM."""
        if self._live:
            try:
                self.llm_engine.abort_request(list(self._live))
            except Exception:  # noqa: BLE001 - vLLM is failing already; the readers are told below
                log.exception("vLLM could not abort its requests")
        for live in self._live.values():
            live.tokens.put(item)
        self._live = {}
