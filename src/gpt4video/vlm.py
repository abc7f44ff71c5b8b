"""A pretrained video LLM as the backbone: Idefics3/SmolVLM, SmolVLM2, Qwen2-VL/Qwen2.5-VL/Qwen3-VL or LLaVA-OneVision
(transformers ``AutoModelForImageTextToText`` + its processor) does the understanding; the generation protocol,
router, gallery, safety hooks, streaming, batch predict, evaluation and the server run on it unchanged.

:class:`VideoLLM` gives the pipeline what a :class:`~gpt4video.modeling.GPT4Video` gives it (``processor.load_video``,
``encode_frames``, ``generate_stream``, ``check_prompt_length``, ``encoder.recording_frame_scores``, ``tokenizer``,
``engine``, ``trained``, ``source``, ``save_pretrained``). Each video's sampled frames go to the model as
images, one image per frame, through its image processor: the Qwen-VL, LLaVA-OneVision and SmolVLM2 *video*
processors need torchvision, which does not import with the CPU torch these machines have, so no family's video
processor is used. The prompt is the processor's own chat template with each user turn's frames first.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import ConfigError, LoraConfig, ModelConfig, VLMConfig
from .encoders.base import FrameScoreRecord
from .encoders.hf_vision import checkpoint_file, read_checkpoint_json
from .engines import EngineRequest, GenerationParams, LLMEngine, TransformersEngine
from .errors import InputError, ModelLoadError
from .modeling import CONFIG_NAME, LORA_DIR, META_NAME, LossOutput, VideoBackbone, check_length, loss_weights
from .processing import IGNORE_INDEX, Turn, VideoSampling

#: model_type in a checkpoint's config.json → the family name the docs and presets use
FAMILIES = {
    "idefics3": "idefics3", "smolvlm": "idefics3",
    "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "qwen3_vl": "qwen2_vl",
    "llava_onevision": "llava_onevision",
}
#: model_type → the family's processor class, built without its video processor where that needs torchvision
_PROCESSORS = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor",
               "llava_onevision": "LlavaOnevisionProcessor", "smolvlm": "SmolVLMProcessor"}


def checkpoint_model_type(name: str | os.PathLike[str]) -> str | None:
    """The ``model_type`` in the ``config.json`` of checkpoint ``name`` (a local directory, or a hub id in the
    cache or reachable); None when it has no config.json."""
    config = read_checkpoint_json(str(name), "config.json")
    if config is None:
        return None
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise ModelLoadError(f"{name}: its config.json names no model_type")
    return model_type


def vlm_model_type(name: str | os.PathLike[str]) -> str | None:
    """The model_type of checkpoint ``name`` if it is a video LLM this project runs; None if it has no config.json.
    A config.json of any other model_type is a ModelLoadError naming it and the supported ones."""
    model_type = checkpoint_model_type(name)
    if model_type is not None and model_type not in FAMILIES:
        raise ModelLoadError(f"{name}: its config.json has model_type {model_type!r}, which is not a video LLM this "
                             f"project runs (supported: {', '.join(FAMILIES)})")
    return model_type


class _NoFrameScores:
    """The frame-encoder face the pipeline's input check reads: a video LLM records no per-frame scores,
    so the safety policy's frame checkers score the frames themselves."""

    @contextmanager
    def recording_frame_scores(self) -> Iterator[FrameScoreRecord]:
        yield FrameScoreRecord()


class VLMEngine(TransformersEngine):
    """The transformers engine over a video LLM. Its prompts carry pixel values, which the batched KV-cache
    slots cannot take, so a server decodes each request on its own (concurrently, one ``generate`` each)."""

    def batched(self, size: int, pipeline_lock: threading.RLock | None = None) -> LLMEngine:
        return self


class VLMPrompts:
    """Prompts for a video LLM: the one place its conversations become token ids and pixel values."""

    def __init__(self, processor: Any, sampling: VideoSampling, image_size: int) -> None:
        self.hf = processor
        self.tokenizer = processor.tokenizer
        self.sampling = sampling
        self.image_size = image_size
        token = getattr(processor, "image_token", None) or "<image>"
        self.video_token_id = int(self.tokenizer.convert_tokens_to_ids(token))  # the image token, never generated
        self.stop_strings: tuple[str, ...] = ()  # replies end at the template's end-of-turn token

    def load_video(self, video: Any) -> Any:
        return self.sampling.load(video)

    def frames(self, videos: Sequence[np.ndarray]) -> torch.Tensor:
        """Each video's frames fitted to the frame count and resized to one square: (V, T, S, S, 3) uint8."""
        out = []
        for i, v in enumerate(videos):
            x = torch.from_numpy(np.ascontiguousarray(self.sampling.fit(v, i))).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          antialias=True, align_corners=False)
            out.append(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))  # (T, S, S, 3)
        return torch.stack(out)  # (V, T, S, S, 3)

    def prompt_ids(self, turns: Sequence[Turn], num_videos: int, *, add_generation_prompt: bool = True) -> torch.Tensor:
        """The token ids (L,) of ``turns`` about ``num_videos`` videos, blank frames standing in for them (a
        prompt's length depends on the frame count and size only)."""
        size = self.image_size
        blank = torch.zeros((num_videos, self.sampling.num_frames, size, size, 3), dtype=torch.uint8) if num_videos else None
        return self.encode(turns, blank, add_generation_prompt=add_generation_prompt)["input_ids"][0]

    def messages(self, turns: Sequence[Turn], num_frames: int) -> list[dict[str, Any]]:
        """The processor's chat messages: each user turn's videos as ``num_frames`` images each, then its text."""
        return [{"role": t.role, "content": [{"type": "image"}] * (num_frames * len(t.videos))
                 + [{"type": "text", "text": t.text}]} for t in turns]

    def encode(self, turns: Sequence[Turn], frames: torch.Tensor | None, *, add_generation_prompt: bool = True,
               labels: bool = False) -> dict[str, torch.Tensor]:
        """``turns`` about videos ``frames`` (V, T, S, S, 3) → the model's inputs (batch of one); with ``labels``,
        labels on each assistant turn (and the end-of-turn text after it), IGNORE_INDEX elsewhere."""
        num_videos = 0 if frames is None else frames.shape[0]
        used = sorted(v for t in turns for v in t.videos)
        if used != list(range(num_videos)):
            raise InputError(f"the turns show videos {used} but {num_videos} were given")
        t = self.sampling.num_frames if frames is None else frames.shape[1]
        order = [v for turn in turns for v in turn.videos]
        images = [frames[v, k].numpy() for v in order for k in range(t)] if num_videos else None  # type: ignore[index]
        text = self._render(turns, t, add_generation_prompt)
        enc = self._tokens(text, images)
        if labels:
            ids = enc["input_ids"][0]
            target = torch.full_like(ids, IGNORE_INDEX)
            for i, turn in enumerate(turns):
                if turn.role != "assistant":
                    continue
                start = self._prefix_length(turns[:i], t, ids, True, images)
                end = self._prefix_length(turns[: i + 1], t, ids, False, images)
                target[start:end] = ids[start:end]
            enc["labels"] = target[None]
        return enc

    def _render(self, turns: Sequence[Turn], num_frames: int, add_generation_prompt: bool) -> str:
        try:
            # the tokenizer renders the processor's template: SmolVLM's own renderer reads its video processor
            return self.tokenizer.apply_chat_template(self.messages(turns, num_frames), tokenize=False,
                                                      chat_template=self.hf.chat_template,
                                                      add_generation_prompt=add_generation_prompt)
        except Exception as e:  # jinja errors from the checkpoint's own template
            raise InputError(f"the model's chat template refuses this conversation: {e}") from None

    def _tokens(self, text: str, images: list[np.ndarray] | None) -> dict[str, torch.Tensor]:
        enc = self.hf(text=[text], images=[images] if images else None, return_tensors="pt")
        return dict(enc)

    def _prefix_length(self, turns: Sequence[Turn], t: int, ids: torch.Tensor, add_generation_prompt: bool,
                       images: list[np.ndarray] | None) -> int:
        n_images = t * sum(len(turn.videos) for turn in turns)
        prefix = self._tokens(self._render(turns, t, add_generation_prompt),
                              images[:n_images] if images and n_images else None)["input_ids"][0]
        if not torch.equal(prefix, ids[: prefix.shape[0]]):
            raise InputError("the model's chat template renders an earlier part of the conversation differently "
                             "once later turns follow, so its replies cannot be labelled for training")
        return int(prefix.shape[0])


class VideoLLM(VideoBackbone):
    """A pretrained video LLM (frozen, plus LoRA on its language model) behind the pipeline's model interface.
    ``trained`` is True once a stage-2 LoRA is loaded; without one the checkpoint answers as it is."""

    untrained_note = ("no GPT4Video stage-2 LoRA is loaded on this video LLM, so it answers as the checkpoint does: "
                      "it has not learned to write <video_prompt> tags or the learned refusals")

    def __init__(self, config: ModelConfig, llm: nn.Module, processor: Any) -> None:
        super().__init__()
        self.config = config
        self.llm = llm
        self.processor = VLMPrompts(processor, VideoSampling.from_config(config), config.vlm.image_size)  # type: ignore[union-attr]
        self.tokenizer = processor.tokenizer
        self.encoder = _NoFrameScores()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: ModelConfig, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> VideoLLM:
        """Load the checkpoint ``config.vlm.model`` names, frozen, with fresh LoRA adapters if configured."""
        vc: VLMConfig = config.vlm  # type: ignore[assignment]
        from transformers import AutoModelForImageTextToText

        processor = load_processor(vc.model)
        try:
            llm = AutoModelForImageTextToText.from_pretrained(vc.model, dtype=dtype)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"vlm.model {vc.model!r}: cannot load it as a video LLM ({e})") from None
        llm = llm.to(device).eval()
        for p in llm.parameters():
            p.requires_grad_(False)
        if vc.lora is not None:
            llm = apply_language_lora(llm, vc.lora)
        return cls(config, llm, processor)

    @classmethod
    def from_pretrained(cls, config: ModelConfig, directory: Path | None, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, engine: str = "transformers",
                        engine_options: dict[str, Any] | None = None) -> VideoLLM:
        """The video LLM of ``config``, with the LoRA weights saved in ``directory`` (None: untrained adapters)."""
        if engine != "transformers" or engine_options:
            raise ConfigError(f"a video LLM backbone decodes with the transformers engine only, not {engine!r}")
        model = cls.from_config(config, device=device, dtype=dtype)
        model.source = str(directory) if directory is not None else config.vlm.model  # type: ignore[union-attr]
        if directory is not None and (directory / CONFIG_NAME).is_file() and config.vlm.lora is not None:  # type: ignore[union-attr]
            from .llm.lora import load_lora_weights

            load_lora_weights(model.llm, directory / LORA_DIR)
            model.trained = True
        return model

    def save_pretrained(self, directory: str | os.PathLike[str], *, info: dict | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write the config (naming the checkpoint) and the LoRA adapter, atomically (temp dir, then rename)."""
        from .llm.lora import save_lora
        from .llm.loading import write_cached_folder

        def write(tmp: Path) -> None:
            self.config.to_yaml(tmp / CONFIG_NAME)
            if self.config.vlm.lora is not None:  # type: ignore[union-attr]
                save_lora(self.llm, tmp / LORA_DIR, dtype=dtype)
            if info:
                (tmp / META_NAME).write_text(json.dumps(info, indent=2), encoding="utf-8")

        return write_cached_folder(Path(directory), write, replace=True)

    # -- what the pipeline and the trainer use -----------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The LoRA weights (the only ones a video LLM trains), by name."""
        from .llm.lora import is_lora_parameter

        return {f"llm.{n}": p for n, p in self.llm.named_parameters() if is_lora_parameter(n)}

    @property
    def frames_identity(self) -> str:
        """What the frames :meth:`encode_frames` gives depend on (for a cache of them): their square size."""
        return json.dumps({"video_llm_frames": self.processor.image_size})

    def encode_frames(self, videos: Sequence[np.ndarray]) -> torch.Tensor:
        """Frames of each video (T_i, H, W, 3) uint8 → (V, T, S, S, 3) uint8: the frames the model will see.
        The vision tower runs inside the prompt's prefill."""
        return self.processor.frames(list(videos))

    def loss(self, turns: list[Turn], features: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy over the assistant turns of one conversation (stage-2 training)."""
        return self(conversations=[turns], features=features).loss

    def forward(self, conversations: list[list[Turn]], features: torch.Tensor | None = None,
                loss_reduction: str = "token") -> LossOutput:
        """The stage-2 loss of a batch of conversations whose videos' frames ``features`` (V, T, S, S, 3) are in
        order, conversation by conversation. Each conversation runs on its own (each family batches images its own
        way); ``loss_reduction`` weighs them as :meth:`GPT4Video.forward` does."""
        num_videos = [sum(len(t.videos) for t in turns) for turns in conversations]
        if sum(num_videos) != (0 if features is None else features.shape[0]):
            raise InputError(f"the conversations show {sum(num_videos)} videos but "
                             f"{0 if features is None else features.shape[0]} were given")
        means, counts = [], []
        start = 0
        for turns, n in zip(conversations, num_videos):
            frames = features[start : start + n] if n else None  # type: ignore[index]
            start += n
            enc = self.processor.encode(turns, frames, add_generation_prompt=False, labels=True)
            count = int((enc["labels"][:, 1:] != IGNORE_INDEX).sum())
            if count == 0:
                raise InputError("this conversation has no assistant turn to learn from")
            means.append(self.llm(**{k: v.to(self.device) for k, v in enc.items()}).loss)  # its tokens' mean
            counts.append(count)
        weights = loss_weights(torch.tensor(counts, dtype=torch.float32), loss_reduction).to(self.device)
        loss = (weights * torch.stack(means).float()).sum() / weights.sum()
        return LossOutput(loss=loss, num_tokens=sum(counts))

    @property
    def context_length(self) -> int | None:
        text = getattr(self.llm.config, "text_config", self.llm.config)
        return getattr(text, "max_position_embeddings", None)

    def check_prompt_length(self, turns: list[Turn], num_videos: int, params: GenerationParams) -> torch.Tensor:
        """The prompt's token ids (L,) (blank frames stand in for the videos), or an InputError if it is longer
        than ``params.max_prompt_tokens`` (by default the model's context less ``max_new_tokens``)."""
        return check_length(self.processor.prompt_ids(turns, num_videos), self.context_length, params)

    def prompt_request(self, turns: list[Turn], videos: Sequence[np.ndarray], params: GenerationParams, *,
                       features: torch.Tensor | None = None, as_token_ids: bool = False) -> EngineRequest:
        """The engine's input: the chat template's token ids with the image tokens expanded, and the pixel values
        (always token ids, so ``as_token_ids`` changes nothing)."""
        if params.stop is None:
            params = params.replace(stop=self.processor.stop_strings)
        t0 = time.perf_counter()
        if features is None and len(videos):
            features = self.encode_frames(videos)
        enc = self.processor.encode(turns, features)
        input_ids = check_length(enc.pop("input_ids")[0], self.context_length, params)  # (L,)
        enc.pop("attention_mask", None)
        return EngineRequest(params=params, input_ids=input_ids, model_inputs=enc,
                             timings={"encode": time.perf_counter() - t0})

    @property
    def eos_token_ids(self) -> list[int]:
        """Tokens that end a reply: the checkpoint's generation config's and the tokenizer's end of sequence."""
        eos = getattr(getattr(self.llm, "generation_config", None), "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        return sorted({int(t) for t in [*eos, self.tokenizer.eos_token_id] if t is not None})

    def _default_engine(self) -> LLMEngine:
        return VLMEngine(self.llm, self.tokenizer, eos_token_ids=self.eos_token_ids,
                         banned_token_ids=[self.processor.video_token_id])


def load_processor(source: str) -> Any:
    """The checkpoint's processor. Where ``AutoProcessor`` fails because the family's video processor needs
    torchvision (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision and SmolVLM2 here; Idefics3 has none), the
    processor is built from its image processor (which falls back to its PIL version), tokenizer, chat template and
    ``processor_config.json`` alone: frames go in as images, never as a video."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(source)
    except ImportError:
        pass
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"vlm.model {source!r}: cannot load its processor ({e})") from None
    import transformers

    model_type = checkpoint_model_type(source)
    if model_type not in _PROCESSORS:
        raise ModelLoadError(f"vlm.model {source!r}: its processor needs torchvision, which does not import here")
    options = {k: v for k, v in (read_checkpoint_json(source, "processor_config.json") or {}).items()
               if k not in ("processor_class", "image_processor", "video_processor", "auto_map")
               and not isinstance(v, dict)}
    template = checkpoint_file(source, "chat_template.jinja")
    if template is not None:
        options["chat_template"] = template.read_text(encoding="utf-8")
    name = _PROCESSORS[model_type]
    images_only = type(f"{name}ImagesOnly", (getattr(transformers, name),),
                       {"check_argument_for_proper_class": _allow_no_video_processor})
    try:
        return images_only(image_processor=AutoImageProcessor.from_pretrained(source),
                           tokenizer=AutoTokenizer.from_pretrained(source), video_processor=None, **options)
    except ImportError as e:  # SmolVLM's processor needs num2words
        raise ModelLoadError(f"vlm.model {source!r}: its processor needs a package that is not installed: "
                             f"{str(e).strip()}") from None


def _allow_no_video_processor(self: Any, name: str, argument: Any) -> Any:
    """The processor's argument check, letting ``video_processor`` be None (frames go in as images)."""
    if name == "video_processor" and argument is None:
        return None
    return type(self).__mro__[1].check_argument_for_proper_class(self, name, argument)


def apply_language_lora(model: nn.Module, config: LoraConfig) -> nn.Module:
    """LoRA on the language model's ``config.target_modules`` only; the vision tower and projector stay as they are."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = "|".join(re.escape(m) for m in config.target_modules)
    pattern = rf".*(language_model|text_model)\..*\.({names})$"

    if not any(re.fullmatch(pattern, n) for n, _ in model.named_modules()):
        raise ModelLoadError(f"LoRA target module(s) {config.target_modules} not found in the language model of "
                             f"{type(model).__name__}")
    return get_peft_model(model, PeftLoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                                target_modules=pattern, bias="none"))


__all__ = ["FAMILIES", "VLMEngine", "VLMPrompts", "VideoLLM", "checkpoint_model_type", "load_processor", "vlm_model_type"]
