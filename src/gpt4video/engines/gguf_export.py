"""A model's LoRA as a GGUF adapter file, for llama.cpp.

llama.cpp applies a GGUF LoRA adapter on top of the base GGUF at load time, so the packaged base weights
stay as shipped (no requantisation) and the adapter is small. Tensor names follow llama.cpp's Llama
layout (``blk.{i}.attn_q.weight.lora_a`` ...). llama.cpp stores the query and key projections with their
rows permuted for its rotary embedding (the permutation its HF converter applies), so ``lora_b`` of
``q_proj`` and ``k_proj`` is permuted the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

#: Hugging Face Llama module name -> llama.cpp tensor name (inside ``blk.{i}.``).
LLAMA_TENSOR_NAMES: dict[str, str] = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LORA_KEY = re.compile(r"layers\.(\d+)\.(self_attn\.\w+|mlp\.\w+)\.lora_([AB])(?:\.default)?\.weight$")


def rotary_permute(rows: np.ndarray, num_heads: int) -> np.ndarray:
    """Reorder the output rows of a query/key projection (out, in) into llama.cpp's rotary layout:
    within each head, the two halves of the head dimension are interleaved."""
    out = rows.shape[0]
    return rows.reshape(num_heads, 2, out // num_heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def lora_tensors(llm: Any) -> dict[str, np.ndarray]:
    """The LoRA weights of a peft-wrapped Llama as llama.cpp adapter tensors (float32 numpy arrays)."""
    config = llm.config
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or \
        config.num_attention_heads
    tensors: dict[str, np.ndarray] = {}
    for name, param in llm.named_parameters():
        if "lora_" not in name:
            continue
        match = _LORA_KEY.search(name)
        if match is None or match.group(2) not in LLAMA_TENSOR_NAMES:
            raise ConfigError(f"cannot export LoRA weight {name!r} to GGUF: only Llama attention and MLP "
                              f"projections ({', '.join(LLAMA_TENSOR_NAMES)}) map to llama.cpp tensors")
        layer, module, which = match.groups()
        data = param.detach().to(torch.float32).cpu().numpy()
        if which == "B" and module == "self_attn.q_proj":
            data = rotary_permute(data, heads)
        elif which == "B" and module == "self_attn.k_proj":
            data = rotary_permute(data, kv_heads)
        tensors[f"blk.{layer}.{LLAMA_TENSOR_NAMES[module]}.weight.lora_{which.lower()}"] = np.ascontiguousarray(data)
    if not tensors:
        raise ConfigError("the model's LLM has no LoRA weights to export")
    return tensors


def write_lora_adapter(llm: Any, path: str | Path) -> Path:
    """Write ``llm``'s LoRA (peft, on a Llama-architecture model) as a llama.cpp GGUF adapter at ``path``."""
    import gguf

    peft_config = getattr(llm, "peft_config", {}).get("default")
    if peft_config is None:
        raise ConfigError("the model's LLM has no LoRA adapter to export")
    if getattr(peft_config, "use_rslora", False) or getattr(peft_config, "use_dora", False):
        raise ConfigError("llama.cpp adapters take plain LoRA (alpha / r scaling); this adapter uses rsLoRA or DoRA")
    if getattr(llm.config, "model_type", "") != "llama":
        raise ConfigError(f"GGUF export knows the Llama layout only, not {llm.config.model_type!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(peft_config.lora_alpha))
    for name, data in lora_tensors(llm).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)  # a crash never leaves a half-written adapter under the final name
    return path


#: ``--quant`` name -> GGML tensor type of the merged projections.
MERGED_TYPES = ("q4_1", "q8_0", "f16", "f32")
_FILE_TYPES = {"f32": 0, "f16": 1, "q4_1": 3, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_MOSTLY_* numbers


def lora_deltas(llm: Any) -> dict[str, np.ndarray]:
    """What the LoRA adds to each adapted projection, ``alpha / r · B @ A`` (out, in) in llama.cpp's layout."""
    peft_config = llm.peft_config["default"]
    scale = float(peft_config.lora_alpha) / float(peft_config.r)
    tensors = lora_tensors(llm)
    return {name[: -len(".lora_a")]: scale * (tensors[name[: -len("a")] + "b"] @ tensors[name])
            for name in tensors if name.endswith(".lora_a")}


def write_merged_gguf(llm: Any, source: str | Path, path: str | Path, quant: str = "q4_1") -> Path:
    """A GGUF of the LLM with its LoRA merged: the ``source`` GGUF's metadata, tokenizer and untouched tensors
    as they are; each adapted projection dequantised, its LoRA delta added, and stored as ``quant``
    (q4_1: the packaged file's own type and size; q8_0: twice the bytes, closer to float; f16; f32)."""
    import gguf
    from gguf.quants import dequantize, quantize

    if quant not in MERGED_TYPES:
        raise ConfigError(f"unknown GGUF quantisation {quant!r}; choose {', '.join(MERGED_TYPES)}")
    target = getattr(gguf.GGMLQuantizationType, quant.upper())
    deltas = lora_deltas(llm)
    reader = gguf.GGUFReader(str(source))
    architecture = reader.fields["general.architecture"].contents()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch=architecture)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # written by the writer itself
        value = _FILE_TYPES[quant] if field.name == "general.file_type" else field.contents()
        kind = field.types[0]
        writer.add_key_value(field.name, value, kind, field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    merged = set()
    for tensor in reader.tensors:
        name = tensor.name.removesuffix(".weight")
        if tensor.name in deltas or name + ".weight" in deltas:
            weight = dequantize(tensor.data, tensor.tensor_type).reshape(deltas[tensor.name].shape)
            weight = weight.astype(np.float32) + deltas[tensor.name]
            if target in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                writer.add_tensor(tensor.name, weight.astype(np.float16 if quant == "f16" else np.float32))
            else:
                writer.add_tensor(tensor.name, quantize(weight, target), raw_dtype=target)
            merged.add(tensor.name)
        else:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    missing = sorted(set(deltas) - merged)
    if missing:
        writer.close()
        partial.unlink(missing_ok=True)
        raise ConfigError(f"{source} has no tensor for the LoRA of {missing[0]} (and {len(missing) - 1} more)")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)
    return path
