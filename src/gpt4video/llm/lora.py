"""LoRA on the language model, through peft."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import LoraConfig
from ..errors import ModelLoadError


def apply_lora(model: torch.nn.Module, config: LoraConfig) -> torch.nn.Module:
    """Wrap ``model`` with fresh LoRA adapters (trainable); the base weights stay frozen."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    missing = [m for m in config.target_modules if not any(n.endswith(m) for n, _ in model.named_modules())]
    if missing:
        raise ModelLoadError(f"LoRA target module(s) {missing} not found in {type(model).__name__}")
    peft_config = PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(model, peft_config)


def reset_lora(model: torch.nn.Module, seed: int) -> int:
    """Initialise every LoRA adapter of ``model`` anew, as peft does for a new one (B zero, so the model is
    its base again), drawing from ``seed``; returns how many layers were reset."""
    reset = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_lora_parameters") and isinstance(getattr(module, "lora_A", None),
                                                                        torch.nn.ModuleDict):
                for adapter in list(module.lora_A.keys()):
                    module.reset_lora_parameters(adapter, True)
                    reset += 1
    return reset


def save_lora(model: torch.nn.Module, directory: str | Path, *, dtype: torch.dtype | None = None) -> None:
    """Save only the adapter weights (and peft's adapter config), in ``dtype`` if given.

    The embedding matrix may have grown by the placeholder token, but its new row is derived
    deterministically (see ``modeling._fit_embeddings``), so the embeddings are not saved.
    """
    model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    if dtype is not None:
        from safetensors import safe_open
        from safetensors.torch import save_file

        path = Path(directory) / "adapter_model.safetensors"
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            state = {k: f.get_tensor(k) for k in f.keys()}
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(path), metadata=metadata)


def load_lora_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load adapter weights saved by :func:`save_lora` into a model already wrapped by :func:`apply_lora`."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(directory) / "adapter_model.safetensors"
    if not path.is_file():
        raise ModelLoadError(f"LoRA adapter weights not found: {path}")
    result = set_peft_model_state_dict(model, load_file(str(path)))
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ModelLoadError(f"{path}: adapter has weights the model does not: {unexpected[:3]}")


def is_lora_parameter(name: str) -> bool:
    return "lora_" in name
