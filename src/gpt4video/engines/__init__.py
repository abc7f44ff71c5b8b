"""Decoding engines: how a prompt becomes a streamed reply.

``GPT4Video`` builds the prompt (the chat template with each video's tokens filled in) and hands it to
its engine as an :class:`EngineRequest`; the engine decodes and streams. Engines register by name in
:data:`ENGINES`; ``make_engine(name, model, **options)`` builds one for a loaded model.

- ``transformers``: transformers' ``generate`` (the reference engine, every LLM transformers loads).
- ``llamacpp``: llama.cpp on the LLM's GGUF with the LoRA as a GGUF adapter, or (option ``gguf``) on a GGUF
  with the LoRA merged in (fast on a CPU; models whose video tokens are words; needs llama-cpp-python,
  ``make llamacpp``).
- ``vllm``: vLLM on a CUDA GPU, the prompt as embeddings and the LoRA as a PEFT adapter (to scale out; needs
  vLLM, ``pip install vllm``).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from ..errors import ConfigError, ModelLoadError
from ..registry import Registry
from .base import DecodeResult, EngineRequest, GenerationParams, LLMEngine, ReplyText, TextStream
from .transformers_generate import TransformersEngine

#: name -> factory(model, **options) -> LLMEngine, where ``model`` is a loaded GPT4Video; a factory's keyword
#: parameters are its engine's options.
ENGINES: Registry[Callable[..., LLMEngine]] = Registry("engine")

#: The llamacpp engine's ``gguf`` choices: the LLM's own GGUF with the LoRA as an adapter, or the LoRA merged
#: into a GGUF of that type. Not q4_1: a LoRA's delta is far smaller than a 4-bit block's step, so requantising
#: the merged weights to 4 bits rounds most of it away (docs/serving.md has the measurement).
LLAMACPP_GGUF = ("adapter", "q8_0", "f16")


@ENGINES.register("transformers")
def _transformers_engine(model: Any) -> LLMEngine:
    return TransformersEngine(model.llm, model.tokenizer, eos_token_ids=model.eos_token_ids,
                              banned_token_ids=[model.processor.video_token_id])


@ENGINES.register("llamacpp")
def _llamacpp_engine(model: Any, gguf: str = "adapter") -> LLMEngine:
    from ..llm.loading import source_gguf
    from .llamacpp import INSTALL_HINT, LlamaCppEngine, is_available, lora_adapter_for, merged_gguf_for

    if gguf not in LLAMACPP_GGUF:
        raise ConfigError(f"the llamacpp engine's gguf must be one of {', '.join(LLAMACPP_GGUF)}, got {gguf!r}")
    if not is_available():
        raise ModelLoadError(INSTALL_HINT)
    source = source_gguf(model.config.llm)
    if source is None:
        raise ConfigError(f"the llamacpp engine runs an LLM from its GGUF file; {model.config.llm.model!r} "
                          "has none (set llm.gguf_file, or use the transformers engine)")
    if model.config.llm.lora is None:  # nothing to apply or merge
        return LlamaCppEngine(source, model.tokenizer, eos_token_ids=model.eos_token_ids)
    if gguf == "adapter":
        return LlamaCppEngine(source, model.tokenizer, eos_token_ids=model.eos_token_ids,
                              lora_path=lora_adapter_for(model))
    return LlamaCppEngine(merged_gguf_for(model, source, gguf), model.tokenizer, eos_token_ids=model.eos_token_ids)


@ENGINES.register("vllm")
def _vllm_engine(model: Any) -> LLMEngine:
    from .vllm import VLLMEngine

    return VLLMEngine.for_model(model)  # a ModelLoadError naming what is missing where vLLM cannot run


def make_engine(name: str, model: Any, **options: Any) -> LLMEngine:
    """The engine ``name`` for ``model`` (a GPT4Video) with its ``options``; an unknown name is a ConfigError
    listing the engines, an option the engine does not take a ConfigError naming it."""
    factory = ENGINES.get(name)
    accepted = list(inspect.signature(factory).parameters)[1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"takes {', '.join(accepted)}" if accepted else "takes no options"
        raise ConfigError(f"the {name} engine has no option {unknown[0]!r} (it {takes})")
    return factory(model, **options)


__all__ = ["ENGINES", "LLAMACPP_GGUF", "DecodeResult", "EngineRequest", "GenerationParams", "LLMEngine", "ReplyText",
           "TextStream", "TransformersEngine", "make_engine"]
