"""Decoding engines: how a prompt becomes a streamed reply.

``GPT4Video`` builds the prompt (the chat template with each video's tokens filled in) and hands it to
its engine as an :class:`EngineRequest`; the engine decodes and streams. Engines register by name in
:data:`ENGINES`; ``make_engine(name, model)`` builds one for a loaded model.

- ``transformers``: transformers' ``generate`` (the reference engine, every LLM transformers loads).
- ``llamacpp``: llama.cpp on the LLM's GGUF with the LoRA as a GGUF adapter (fast on a CPU; models whose
  video tokens are words; needs llama-cpp-python, ``make llamacpp``).
- ``vllm``: vLLM on a CUDA GPU, the prompt as embeddings and the LoRA as a PEFT adapter (to scale out; needs
  vLLM, ``pip install vllm``).
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError, ModelLoadError
from ..registry import Registry
from .base import DecodeResult, EngineRequest, GenerationParams, LLMEngine, ReplyText, TextStream
from .transformers_generate import TransformersEngine

#: name -> factory(model) -> LLMEngine, where ``model`` is a loaded GPT4Video.
ENGINES: Registry[Callable[[Any], LLMEngine]] = Registry("engine")


@ENGINES.register("transformers")
def _transformers_engine(model: Any) -> LLMEngine:
    return TransformersEngine(model.llm, model.tokenizer, eos_token_ids=model.eos_token_ids,
                              banned_token_ids=[model.processor.video_token_id])


@ENGINES.register("llamacpp")
def _llamacpp_engine(model: Any) -> LLMEngine:
    from ..llm.loading import source_gguf
    from .llamacpp import INSTALL_HINT, LlamaCppEngine, is_available, lora_adapter_for

    if not is_available():
        raise ModelLoadError(INSTALL_HINT)
    gguf = source_gguf(model.config.llm)
    if gguf is None:
        raise ConfigError(f"the llamacpp engine runs an LLM from its GGUF file; {model.config.llm.model!r} "
                          "has none (set llm.gguf_file, or use the transformers engine)")
    adapter = lora_adapter_for(model) if model.config.llm.lora is not None else None
    return LlamaCppEngine(gguf, model.tokenizer, eos_token_ids=model.eos_token_ids, lora_path=adapter)


@ENGINES.register("vllm")
def _vllm_engine(model: Any) -> LLMEngine:
    from .vllm import VLLMEngine

    return VLLMEngine.for_model(model)  # a ModelLoadError naming what is missing where vLLM cannot run


def make_engine(name: str, model: Any) -> LLMEngine:
    """The engine ``name`` for ``model`` (a GPT4Video); an unknown name is a ConfigError listing the engines."""
    return ENGINES.get(name)(model)


__all__ = ["ENGINES", "DecodeResult", "EngineRequest", "GenerationParams", "LLMEngine", "ReplyText",
           "TextStream", "TransformersEngine", "make_engine"]
