"""GPT4Video: frames → frozen encoder → video abstractor → placeholder filling → LLM (+ LoRA).

``save_pretrained`` writes only what is trained (the abstractor and the LoRA adapter) and a config that
names the frozen parts; ``from_pretrained`` rebuilds the same model from that directory or from a
preset name (``smol``, ``paper``).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .abstractor import VideoAbstractor
from .audio.branch import AudioAbstractor, AudioEncoder, check_audio_config
from .config import ConfigError, ModelConfig
from .encoders import FrameEncoder, build_encoder
from .errors import InputError, ModelLoadError
from .llm.loading import load_llm, write_cached_folder
from .llm.lora import apply_lora, is_lora_parameter, load_lora_weights, save_lora
from .engines import EngineRequest, GenerationParams, LLMEngine, TextStream, make_engine
from .processing import IGNORE_INDEX, GPT4VideoProcessor, Turn, VideoSampling, ensure_video_token

CONFIG_NAME = "gpt4video_config.yaml"
ABSTRACTOR_NAME = "abstractor.safetensors"
AUDIO_ABSTRACTOR_NAME = "audio_abstractor.safetensors"
LORA_DIR = "lora"
META_NAME = "training_info.json"
#: A hub id: ``org/name``.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def package_resource(*parts: str) -> Path:
    return Path(str(importlib.resources.files("gpt4video").joinpath(*parts)))


def preset_names() -> list[str]:
    folder = package_resource("configs", "model")
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def preset_config(name: str) -> ModelConfig:
    path = package_resource("configs", "model", f"{name}.yaml")
    if not path.is_file():
        raise ModelLoadError(f"unknown preset {name!r}; presets: {', '.join(preset_names()) or 'none'}")
    return ModelConfig.from_yaml(path)


def packaged_weights_dir(preset: str) -> Path | None:
    """The directory of trained weights shipped for a preset, if the package has one."""
    path = package_resource("weights", preset)
    return path if (path / CONFIG_NAME).is_file() else None


def resolve_config(name_or_path: str | os.PathLike[str]) -> ModelConfig:
    """The config of a preset, a saved model or a video LLM checkpoint (a directory, or a hub id ``org/name``
    recognised by its config.json's model_type), without loading any weights (to check inputs early)."""
    from .vlm import FAMILIES, vlm_model_type

    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / CONFIG_NAME).is_file():
            return ModelConfig.from_yaml(path / CONFIG_NAME)
        if vlm_model_type(path):  # a pretrained video LLM's own checkpoint
            return ModelConfig.from_dict({"vlm": {"model": str(path.resolve())}})
        raise ModelLoadError(f"{path}: not a gpt4video model directory (no {CONFIG_NAME}) nor a video LLM "
                             f"checkpoint (no config.json; supported model types: {', '.join(FAMILIES)})")
    if name in preset_names():
        directory = packaged_weights_dir(name)
        return ModelConfig.from_yaml(directory / CONFIG_NAME) if directory else preset_config(name)
    if HUB_ID.fullmatch(name) and vlm_model_type(name):
        return ModelConfig.from_dict({"vlm": {"model": name}})
    raise ModelLoadError(f"model {name!r} is neither a preset ({', '.join(preset_names())}), a model directory, nor a "
                         "video LLM checkpoint on the hub (org/name) that is cached here or reachable")


#: Inverse temperature of the grounding loss's cosine logits (stage 0).
GROUNDING_SCALE = 20.0
#: loss_reduction → the power of a sequence's labelled-token count that divides each of its tokens' weight.
_LOSS_REDUCTION_POWERS = {"token": 0.0, "sample": 1.0, "square": 0.5}


def loss_weights(counts: torch.Tensor, loss_reduction: str) -> torch.Tensor:
    """The weight of each sequence's mean loss, given its labelled-token ``counts`` (float): n for ``"token"``
    (every token alike), 1 for ``"sample"`` (every sequence alike), sqrt(n) for ``"square"``."""
    power = _LOSS_REDUCTION_POWERS.get(loss_reduction)
    if power is None:
        raise InputError(f"loss_reduction must be one of token, sample, square; got {loss_reduction!r}")
    return counts.pow(1.0 - power)


@dataclass
class LossOutput:
    loss: torch.Tensor
    num_tokens: int


class VideoBackbone(nn.Module):
    """What the pipeline, the trainer, batch predict, evaluation and the server use, whichever model understands
    the videos: :class:`GPT4Video` (encoder → abstractor → LLM) or a pretrained video LLM
    (:class:`gpt4video.vlm.VideoLLM`). A backbone turns a conversation into an engine request
    (:meth:`prompt_request`) and names its default engine (:meth:`_default_engine`); decoding, the engine slot
    and gradient checkpointing of ``llm`` (its language model, with LoRA) are here, once.

    ``trained`` is True once trained weights (abstractor, LoRA) were loaded; ``source`` says where from."""

    llm: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.trained = False
        self.source: str = ""
        self._engine: LLMEngine | None = None  # built on first use, see `engine`

    # -- what each backbone defines -------------------------------------------------------------
    def prompt_request(self, turns: list[Turn], videos: Sequence[np.ndarray], params: GenerationParams, *,
                       features: torch.Tensor | None = None, as_token_ids: bool = False) -> EngineRequest:
        raise NotImplementedError

    def _default_engine(self) -> LLMEngine:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------
    @property
    def engine(self) -> LLMEngine:
        """The decoding engine (``transformers`` unless set to another, see :mod:`gpt4video.engines`)."""
        if self._engine is None:
            self._engine = self._default_engine()
        return self._engine

    @engine.setter
    def engine(self, engine: LLMEngine) -> None:
        self._engine = engine

    def generate_stream(
        self,
        turns: list[Turn],
        videos: Sequence[np.ndarray] = (),
        params: GenerationParams | None = None,
        *,
        features: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        cancel: threading.Event | None = None,
        engine: LLMEngine | None = None,
    ) -> TextStream:
        """Stream the reply to ``turns`` about ``videos`` (frames arrays, or ``features`` from
        :meth:`encode_frames`; ``audio_features`` from the audio branch of a model with one), decoded by
        ``engine`` (default :attr:`engine`). Setting ``cancel`` (from any thread) stops the decode, its
        prefill included."""
        engine = engine or self.engine
        audio = {"audio_features": audio_features} if audio_features is not None else {}
        request = self.prompt_request(turns, videos, params or GenerationParams(), features=features,
                                      as_token_ids=not getattr(engine, "accepts_embeddings", True), **audio)
        request.cancel = cancel
        return engine.generate(request)

    def generate(self, turns: list[Turn], videos: Sequence[np.ndarray] = (),
                 params: GenerationParams | None = None, **kw: Any) -> TextStream:
        return self.generate_stream(turns, videos, params, **kw).consume()

    def language_model(self) -> nn.Module:
        """``llm`` without its peft wrapper."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the LLM's layer activations during the backward pass instead of keeping them: less memory
        for about one more forward pass of compute (non-reentrant checkpointing, so it works whether the
        trainable parts are below the LLM, the LoRA inside it, or both)."""
        causal = self.language_model()
        if not getattr(causal, "supports_gradient_checkpointing", False):
            raise ConfigError(f"gradient_checkpointing: the LLM ({type(causal).__name__}) does not support it")
        enable = getattr(causal, "activation_checkpointing_enable", None)  # its name from transformers 5.x on
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            causal.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class GPT4Video(VideoBackbone):
    """The whole model. Build with :meth:`from_config` or :meth:`from_pretrained`."""

    def __init__(
        self, config: ModelConfig, encoder: FrameEncoder, abstractor: VideoAbstractor, llm: nn.Module, tokenizer,
        audio_encoder: AudioEncoder | None = None, audio_abstractor: AudioAbstractor | None = None,
    ) -> None:  # noqa: ANN001
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.abstractor = abstractor
        self.llm = llm
        self.tokenizer = tokenizer
        # The audio branch (config.audio): its tokens follow each video's visual tokens in the video's span.
        self.audio_encoder = audio_encoder
        self.audio_abstractor = audio_abstractor
        self.processor = GPT4VideoProcessor(tokenizer, self.num_video_tokens,
                                            VideoSampling.from_config(config), config.llm.chat_template,
                                            config.llm.chat_template_options)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        encoder: FrameEncoder | None = None,
        llm: nn.Module | None = None,
        tokenizer=None,  # noqa: ANN001
        audio_encoder: AudioEncoder | None = None,
    ) -> GPT4Video:
        """Load the frozen parts named by ``config`` (or take them ready-made) and build a fresh abstractor (and,
        with ``config.audio``, a fresh audio abstractor over the frozen audio encoder); a config with a ``vlm``
        section gives a pretrained video LLM with fresh LoRA (:class:`gpt4video.vlm.VideoLLM`)."""
        if config.vlm is not None:
            if encoder is not None or llm is not None or tokenizer is not None or audio_encoder is not None:
                raise ConfigError("a video LLM config (vlm) loads its checkpoint whole; it takes no encoder, llm or tokenizer")
            from .vlm import VideoLLM

            return VideoLLM.from_config(config, device=device, dtype=dtype)  # type: ignore[return-value]
        if encoder is None:
            encoder = build_encoder(config.encoder, device=device, dtype=dtype)
        ac = config.abstractor
        if (encoder.hidden_size, encoder.tokens_per_frame) != (ac.encoder_dim, ac.tokens_per_frame):
            raise ConfigError(
                f"encoder {config.encoder.name!r} gives {encoder.tokens_per_frame} tokens of width "
                f"{encoder.hidden_size} per frame, but the abstractor expects {ac.tokens_per_frame} × {ac.encoder_dim}"
            )
        if llm is None or tokenizer is None:
            llm, tokenizer = load_llm(config.llm, device=device, dtype=dtype)
        width = llm.get_input_embeddings().weight.shape[1]
        if width != ac.output_dim:
            raise ConfigError(f"abstractor.output_dim is {ac.output_dim} but the LLM's embedding width is {width}")
        for p in llm.parameters():
            p.requires_grad_(False)
        ensure_video_token(tokenizer)
        _fit_embeddings(llm, len(tokenizer))
        if config.llm.lora is not None:
            llm = apply_lora(llm, config.llm.lora)
        abstractor = VideoAbstractor(ac)
        abstractor.match_output_scale(float(llm.get_input_embeddings().weight.detach().float().std()))
        abstractor = abstractor.to(device=device, dtype=dtype)
        audio_abstractor = None
        if config.audio is not None:
            if audio_encoder is None:
                audio_encoder = AudioEncoder.from_pretrained(config.audio.encoder, device=device, dtype=dtype)
            check_audio_config(config.audio, width)
            audio_abstractor = AudioAbstractor(config.audio, audio_encoder.hidden_size, audio_encoder.positions)
            audio_abstractor.match_output_scale(float(llm.get_input_embeddings().weight.detach().float().std()))
            audio_abstractor = audio_abstractor.to(device=device, dtype=dtype)
        model = cls(config, encoder, abstractor, llm, tokenizer, audio_encoder, audio_abstractor)
        model.eval()
        return model

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str], *, device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32, engine: str = "transformers",
        engine_options: Mapping[str, Any] | None = None, **frozen_parts,  # noqa: ANN003
    ) -> GPT4Video:
        """From a directory written by :meth:`save_pretrained`, or a preset name (with its shipped weights if any).
        ``engine`` names the decoding engine (:mod:`gpt4video.engines`), ``engine_options`` its options."""
        name = str(name_or_path)
        config = resolve_config(name)  # checks the name
        path = Path(name).expanduser()
        directory = path if path.is_dir() else packaged_weights_dir(name)
        if config.vlm is not None:  # a pretrained video LLM does the understanding (see gpt4video.vlm)
            from .vlm import VideoLLM

            return VideoLLM.from_pretrained(config, directory, device=device, dtype=dtype, engine=engine,
                                            engine_options=engine_options)
        model = cls.from_config(config, device=device, dtype=dtype, **frozen_parts)
        if directory is None:  # a preset with no shipped weights: untrained abstractor and LoRA
            model.source = f"preset:{name}"
        else:
            model.load_trained_weights(directory)
            model.source = str(directory)
        if engine != "transformers" or engine_options:
            model.engine = make_engine(engine, model, **(engine_options or {}))
        return model

    def load_trained_weights(self, directory: str | os.PathLike[str]) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        for module, name, what in self._trained_modules():
            weights = directory / name
            if not weights.is_file():
                raise ModelLoadError(f"{directory}: missing {name}")
            try:
                module.load_state_dict(load_file(str(weights)), strict=True)
            except RuntimeError as e:
                raise ModelLoadError(f"{weights}: does not match the configured {what} ({e})") from None
        if self.config.llm.lora is not None:
            load_lora_weights(self.llm, directory / LORA_DIR)
        self.trained = True

    def _trained_modules(self) -> list[tuple[nn.Module, str, str]]:
        """The trained modules besides the LoRA: (module, its weights file, what it is called in errors)."""
        modules = [(self.abstractor, ABSTRACTOR_NAME, "abstractor")]
        if self.audio_abstractor is not None:
            modules.append((self.audio_abstractor, AUDIO_ABSTRACTOR_NAME, "audio branch"))
        return modules

    def save_pretrained(self, directory: str | os.PathLike[str], *, info: dict | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write the config, the abstractor and the LoRA adapter, atomically (temp dir, then rename).

        dtype: store the trained weights in this floating dtype (e.g. torch.float16, half the size, for
        shipping); None keeps the model's own. :meth:`from_pretrained` casts them back to the dtype it
        builds the model in."""
        from safetensors.torch import save_file

        if dtype is not None and not dtype.is_floating_point:
            raise InputError(f"weights can only be stored in a floating dtype, not {dtype}")

        def write(tmp: Path) -> None:
            self.config.to_yaml(tmp / CONFIG_NAME)
            for module, name, _ in self._trained_modules():
                state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
                if dtype is not None:
                    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
                save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / name))
            if self.config.llm.lora is not None:
                save_lora(self.llm, tmp / LORA_DIR, dtype=dtype)
            if info:
                (tmp / META_NAME).write_text(json.dumps(info, indent=2), encoding="utf-8")

        return write_cached_folder(Path(directory), write, replace=True)

    # -- pieces ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.abstractor.output_proj.weight.device

    def train(self, mode: bool = True) -> GPT4Video:
        """Training mode for the abstractor and the LLM (LoRA dropout); the frozen frame encoder always evaluates."""
        super().train(mode)
        self.encoder.eval()
        return self

    @property
    def num_video_tokens(self) -> int:
        """Placeholders per video: the abstractor's queries, and the audio branch's after them."""
        audio = self.config.audio.num_queries if self.config.audio is not None else 0
        return self.config.abstractor.num_queries + audio

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        params = {f"abstractor.{n}": p for n, p in self.abstractor.named_parameters()}
        if self.audio_abstractor is not None:
            params.update({f"audio_abstractor.{n}": p for n, p in self.audio_abstractor.named_parameters()})
        params.update({f"llm.{n}": p for n, p in self.llm.named_parameters() if is_lora_parameter(n)})
        return params

    def encode_frames(self, videos: Sequence[np.ndarray]) -> torch.Tensor:
        """Frames of each video (T_i, H, W, 3) uint8 → features (V, T, N, D) with T = config.num_frames.

        A video with fewer frames (a still image has one) is padded by repeating frames evenly.
        """
        t = self.config.num_frames
        frames = self.processor.video_frames(list(videos))
        features = self.encoder(frames)  # (V·T, N, D)
        return features.reshape(len(videos), t, *features.shape[1:]).to(self.device)  # (V, T, N, D)

    def encode_audio(self, waveforms: Sequence[np.ndarray | None]) -> torch.Tensor:
        """Each video's sound (mono float32 at 16 kHz; None for none) → the frozen audio encoder's features
        (V, S, D_a). Needs ``config.audio``."""
        if self.audio_encoder is None:
            raise ConfigError("this model has no audio branch (config.audio is not set)")
        return self.audio_encoder(list(waveforms)).to(self.device)

    def video_embeddings(self, features: torch.Tensor, audio_features: torch.Tensor | None = None) -> torch.Tensor:
        """(V, T, N, D_enc) → (V, Nq, D_llm): the abstractor's tokens, or with ``abstractor.word_tokens``
        the input embeddings of the words they are closest to (gradients pass straight through).

        With the audio branch, each video's audio tokens follow: (V, Nq + N_a, D_llm), from
        ``audio_features`` (V, S, D_a) of :meth:`encode_audio`, or from silence when None."""
        tokens = self.abstractor(features)
        if self.audio_abstractor is not None:
            if audio_features is None:
                audio_features = self.encode_audio([None] * features.shape[0])  # (V, S, D_a)
            tokens = torch.cat([tokens, self.audio_abstractor(audio_features).to(tokens.dtype)], dim=1)
        if not self.config.abstractor.word_tokens:
            return tokens
        words, _ = self._nearest_words(tokens)
        return words.to(tokens.dtype) + (tokens - tokens.detach())  # forward: exactly the words; backward: identity

    def word_vocabulary(self) -> tuple[torch.Tensor, int | None]:
        """What ``abstractor.word_tokens`` chooses from: the vocabulary's token ids (V,) and the index in it
        of ``word_tokens_end`` (None without one). Raises :class:`ConfigError` naming what is missing or wrong."""
        ac = self.config.abstractor
        if not ac.vocabulary:
            raise ConfigError("abstractor.word_tokens needs abstractor.vocabulary, the token ids the video tokens "
                              "may take; stage 0 (grounding) writes it: train stage 0 first")
        ids = torch.tensor(ac.vocabulary, dtype=torch.long, device=self.device)
        if int(ids.max()) >= self.llm.get_input_embeddings().weight.shape[0]:
            raise ConfigError(f"abstractor.vocabulary has token id {int(ids.max())}, beyond the LLM's vocabulary")
        if ac.word_tokens_end is None:
            return ids, None
        end = self.tokenizer(ac.word_tokens_end, add_special_tokens=False).input_ids
        if len(end) != 1:
            raise ConfigError(f"abstractor.word_tokens_end {ac.word_tokens_end!r} must be one token of the LLM's "
                              f"tokenizer, it is {len(end)}")
        if end[0] not in ac.vocabulary:
            raise ConfigError(f"abstractor.word_tokens_end {ac.word_tokens_end!r} is not in abstractor.vocabulary")
        return ids, ac.vocabulary.index(end[0])

    def _nearest_words(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (..., D) → (the input embeddings of their nearest vocabulary words (..., D), those words'
        token ids (...)), nearest by cosine similarity; after the first end word, every token is the end word."""
        ids, end_index = self.word_vocabulary()
        table = self.llm.get_input_embeddings().weight[ids].detach()  # (V, D)
        sim = nn.functional.normalize(tokens.detach().float(), dim=-1) @ nn.functional.normalize(table.float(), dim=-1).T
        best = sim.argmax(dim=-1)  # (..., Nq)
        if end_index is not None:
            is_end = (best == end_index).long()
            after = is_end.cumsum(dim=-1) - is_end > 0  # an end word came before this token
            best = best.masked_fill(after, end_index)
        return table[best], ids[best]

    @torch.no_grad()
    def video_words(self, features: torch.Tensor) -> list[str]:
        """What each video reads as: its tokens' nearest vocabulary words, decoded (one string per video).
        features: (V, T, N, D_enc). Needs ``abstractor.vocabulary`` (any model that went through stage 0)."""
        _, ids = self._nearest_words(self.abstractor(features))
        return [self.tokenizer.decode(row.tolist()) for row in ids]

    def _video_slots(self, input_ids: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Where the video placeholders are in ``input_ids`` (a bool mask); an InputError unless there are
        exactly ``n_tokens`` of them."""
        mask = input_ids == self.processor.video_token_id
        n_slots = int(mask.sum())
        if n_slots != n_tokens:
            raise InputError(
                f"the prompt has {n_slots} video placeholder tokens but {n_tokens} video tokens were given "
                f"({self.num_video_tokens} per video)"
            )
        return mask

    def embed(self, input_ids: torch.Tensor, video_embeds: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with each video's Nq placeholders replaced by its abstractor output.

        input_ids: (B, L); video_embeds: (V, Nq, D) in the order the placeholders appear (row by row).
        """
        embeds = self.llm.get_input_embeddings()(input_ids)  # (B, L, D)
        n_tokens = 0 if video_embeds is None else video_embeds.shape[0] * video_embeds.shape[1]
        mask = self._video_slots(input_ids, n_tokens)  # (B, L)
        if n_tokens == 0:
            return embeds
        flat = video_embeds.reshape(-1, embeds.shape[-1]).to(embeds.dtype)  # (V·Nq, D)
        return embeds.masked_scatter(mask.unsqueeze(-1).expand_as(embeds), flat)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        video_embeds: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        grounding_targets: torch.Tensor | None = None,
        grounding_vocab: torch.Tensor | None = None,
        grounding_caption_mask: torch.Tensor | None = None,
        loss_reduction: str = "token",
    ):  # noqa: ANN201 - transformers' CausalLMOutput
        """Training/scoring forward. Pass frame ``features`` (V, T, N, D) (and, with the audio branch, the sound's
        ``audio_features`` (V, S, D_a)) or ready ``video_embeds`` (V, Nq, D).

        Without ``labels``: the LLM's output (logits for every position). With ``labels``: a
        :class:`LossOutput` whose loss is the mean next-token cross-entropy over the labelled (assistant)
        tokens; the output head runs only at those positions, which saves most of its cost on a large vocabulary.
        ``loss_reduction`` weighs the tokens: ``"token"`` (every labelled token alike, the default), ``"sample"``
        (each sequence alike: the mean of the per-sequence means, so a one-word answer counts as much as a long
        reply) or ``"square"`` (a sequence of n labelled tokens weighs each token 1/sqrt(n), between the two;
        InternVL 2.5's square averaging).
        With ``grounding_targets`` (and ``grounding_vocab``) instead of ``input_ids``: the grounding loss of
        :meth:`grounding_loss` (training stage 0); the LLM does not run.
        """
        if grounding_targets is not None:
            if features is None or grounding_vocab is None:
                raise InputError("the grounding loss needs features and grounding_vocab")
            return self.grounding_loss(features, grounding_targets, grounding_vocab, grounding_caption_mask)
        if input_ids is None:
            raise InputError("forward needs input_ids (or grounding_targets for the grounding loss)")
        if video_embeds is None and features is not None:
            video_embeds = self.video_embeddings(features, audio_features)
        inputs_embeds = self.embed(input_ids, video_embeds)
        if labels is None:
            return self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        causal = self.language_model()
        decoder = getattr(causal, causal.base_model_prefix)
        hidden = decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        targets = labels[:, 1:]  # (B, L-1): position p predicts token p+1
        mask = targets != IGNORE_INDEX
        num_tokens = int(mask.sum())
        if num_tokens == 0:
            raise InputError("this batch has no assistant tokens to learn from")
        logits = causal.get_output_embeddings()(hidden[:, :-1][mask])  # (K, vocab)
        if loss_reduction == "token":
            loss = nn.functional.cross_entropy(logits.float(), targets[mask])
            return LossOutput(loss=loss, num_tokens=num_tokens)
        per_token = nn.functional.cross_entropy(logits.float(), targets[mask], reduction="none")  # (K,)
        counts = mask.sum(dim=1, keepdim=True).expand_as(mask)[mask].float()  # (K,) its sequence's labelled tokens
        weights = loss_weights(counts, loss_reduction) / counts  # (K,) a sequence's weight, spread over its tokens
        return LossOutput(loss=(weights * per_token).sum() / weights.sum(), num_tokens=num_tokens)

    def grounding_logits(self, features: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
        """(B, Nq, V): each video token's cosine similarity to the input embedding of each word of ``vocab``
        (token ids), × :data:`GROUNDING_SCALE`. features: (B, T, N, D) frame features."""
        tokens = self.abstractor(features)  # (B, Nq, D), soft (the loss shapes them before any word choice)
        words = self.llm.get_input_embeddings().weight[vocab].detach()  # (V, D)
        return GROUNDING_SCALE * nn.functional.normalize(tokens.float(), dim=-1) @ (
            nn.functional.normalize(words.float(), dim=-1).T)

    def grounding_loss(self, features: torch.Tensor, targets: torch.Tensor, vocab: torch.Tensor,
                       caption_mask: torch.Tensor | None = None) -> LossOutput:
        """Stage-0 loss: video token i should read, in the LLM's own word-embedding space, as token i of
        the clip's caption.

        features: (B, T, N, D) frame features. targets: (B, Nq), or (B, K, Nq) for K accepted readings of
        each caption (e.g. its objects in every order; padded with readings that are all IGNORE_INDEX),
        as indices into ``vocab`` (IGNORE_INDEX past a caption's end). vocab: (V,) token ids the captions
        use. Cross-entropy of :meth:`grounding_logits` against the caption's token at each position, for
        each clip against the reading its tokens are closest to (lowest mean cross-entropy): like DETR's
        set matching, the abstractor may put a clip's objects in any order, instead of having to work
        out which object comes second. ``caption_mask`` (like ``targets``): True at the caption's own
        tokens; the summed cross-entropy (filler included) is then divided by their number alone, so
        training the tokens past a caption's end to spell a filler does not dilute the words' gradient,
        and ``num_tokens`` counts caption tokens only. The LLM never runs, so a step costs only the abstractor; what it
        buys is video tokens that already look like words to the frozen LLM, which stage 1 could not
        find on its own in a short run (it learned a clip-independent soft prompt).
        """
        if targets.dim() == 2:
            targets = targets.unsqueeze(1)  # (B, 1, Nq): one reading per caption
        if targets.dim() != 3:
            raise InputError(f"grounding targets must be (B, Nq) or (B, K, Nq), got {tuple(targets.shape)}")
        mask = targets != IGNORE_INDEX  # (B, K, Nq)
        if not bool(mask.any()):
            raise InputError("this batch has no caption tokens to ground")
        logp = self.grounding_logits(features, vocab).log_softmax(-1)  # (B, Nq, V)
        b, k, n = targets.shape
        nll = -logp.unsqueeze(1).expand(b, k, n, logp.shape[-1]).gather(
            -1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask  # (B, K, Nq), 0 where ignored
        counts = mask.sum(-1)  # (B, K)
        mean = (nll.sum(-1) / counts.clamp(min=1)).masked_fill(counts == 0, float("inf"))  # (B, K)
        best = mean.argmin(dim=-1)  # (B,) the closest reading of each caption
        rows = torch.arange(b, device=targets.device)
        if caption_mask is not None:
            if caption_mask.dim() == 2:
                caption_mask = caption_mask.unsqueeze(1)
            if caption_mask.shape != targets.shape:
                raise InputError(f"grounding caption mask {tuple(caption_mask.shape)} does not match the targets "
                                 f"{tuple(targets.shape)}")
            counts = (caption_mask & mask).sum(-1)  # (B, K)
        num_tokens = int(counts[rows, best].sum())
        loss = nll[rows, best].sum() / max(num_tokens, 1)
        return LossOutput(loss=loss, num_tokens=num_tokens)

    # -- generation ------------------------------------------------------------------------------
    def prompt_request(self, turns: list[Turn], videos: Sequence[np.ndarray], params: GenerationParams, *,
                       features: torch.Tensor | None = None, audio_features: torch.Tensor | None = None,
                       as_token_ids: bool = False) -> EngineRequest:
        """The engine's input for ``turns``: the chat template's token embeddings with the video tokens
        (encoder, abstractor) in place of each video's placeholders, or with ``as_token_ids`` the token
        ids, each placeholder replaced by the id of the word its video token is (``word_tokens`` models)."""
        if as_token_ids and self.audio_abstractor is not None:
            raise ConfigError("a prompt of token ids cannot carry audio tokens (they are vectors): use an engine "
                              "that takes embeddings (transformers), or a model without config.audio")
        if as_token_ids and not self.config.abstractor.word_tokens:
            raise ConfigError("a prompt of token ids needs video tokens that are words (abstractor.word_tokens); "
                              "this model's are vectors: use an engine that takes embeddings (transformers)")
        timings: dict[str, float] = {}
        if params.stop is None:
            params = params.replace(stop=self.processor.stop_strings)
        num_videos = len(videos) if features is None else features.shape[0]
        input_ids = self.check_prompt_length(turns, num_videos, params).to(self.device)  # (L,)
        with torch.inference_mode():
            video_tokens = None
            if num_videos:
                if features is None:
                    t0 = time.perf_counter()
                    features = self.encode_frames(videos)
                    timings["encode"] = time.perf_counter() - t0
                t1 = time.perf_counter()
                if as_token_ids:
                    video_tokens = self._nearest_words(self.abstractor(features))[1]  # (V, Nq) word ids
                else:
                    video_tokens = self.video_embeddings(features, audio_features)  # (V, Nq (+ N_a), D)
                timings["abstract"] = time.perf_counter() - t1
            if as_token_ids:
                ids = input_ids.clone()
                mask = self._video_slots(ids, 0 if video_tokens is None else video_tokens.numel())
                if video_tokens is not None:
                    ids[mask] = video_tokens.reshape(-1)
                return EngineRequest(params=params, input_ids=ids, timings=timings)
            embeds = self.embed(input_ids.unsqueeze(0), video_tokens)[0]
        return EngineRequest(params=params, inputs_embeds=embeds, timings=timings)

    @property
    def context_length(self) -> int | None:
        """The LLM's context window in tokens (None if its config does not say)."""
        return getattr(self.llm.config, "max_position_embeddings", None)

    def check_prompt_length(self, turns: list[Turn], num_videos: int, params: GenerationParams) -> torch.Tensor:
        """The prompt's token ids (L,), or an InputError if it is longer than ``params.max_prompt_tokens`` (by
        default the model's context less ``max_new_tokens``): a long prompt is refused before any work."""
        return check_length(self.processor.encode(turns, num_videos).input_ids, self.context_length, params)

    @property
    def eos_token_ids(self) -> list[int]:
        """Tokens that end a reply: the template's end of turn and the tokenizer's end of sequence."""
        ids = {self.processor.eos_token_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)

    def _default_engine(self) -> LLMEngine:
        return make_engine("transformers", self)


def is_model(obj: Any) -> bool:
    """Whether ``obj`` is a loaded model of either backbone: a GPT4Video or a pretrained video LLM."""
    return isinstance(obj, VideoBackbone)


def check_length(input_ids: torch.Tensor, context_length: int | None, params: GenerationParams) -> torch.Tensor:
    """``input_ids`` (L,), or an InputError if L exceeds ``params.max_prompt_tokens`` (by default the context
    less ``max_new_tokens``)."""
    limit, why = params.max_prompt_tokens, "max_prompt_tokens"
    if limit is None and context_length is not None:
        limit = context_length - params.max_new_tokens
        why = f"the model's context of {context_length} tokens less max_new_tokens ({params.max_new_tokens})"
    if limit is not None and input_ids.shape[0] > limit:
        raise InputError(f"the prompt is {input_ids.shape[0]} tokens, more than the {max(limit, 0)} allowed "
                         f"({why}); shorten the conversation or ask for fewer new tokens")
    return input_ids


def _fit_embeddings(llm: nn.Module, vocab_size: int) -> None:
    """Grow the embedding matrix if the placeholder token is new; its row is the mean of the others.

    The placeholder's embedding is never read (the abstractor output replaces it) and generation never
    samples it; the mean keeps resizing deterministic so saved and reloaded models give identical logits.
    """
    old = llm.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return
    llm.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        emb = llm.get_input_embeddings().weight
        emb[old:] = emb[:old].mean(dim=0, keepdim=True)
        out = llm.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            out.weight[old:] = out.weight[:old].mean(dim=0, keepdim=True)
    for p in llm.parameters():
        p.requires_grad_(False)
