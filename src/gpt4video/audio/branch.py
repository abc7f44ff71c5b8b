"""The audio branch (Video-LLaMA's audio Q-former): sound → frozen Whisper encoder → audio tokens.

    waveform (16 kHz, up to 30 s) ──log-mel──▶ (80, 3000) ──frozen Whisper encoder──▶ F_a (S, D_a)
        ──learnable queries Q_a (N_a × W) attending over [F_a + time embedding; Q_a], L layers──▶ (N_a, W)
        ──W_a x + b──▶ (N_a, D_llm) audio tokens

The encoder stays frozen; the queries, their cross-attention stack, the time embedding and the output
projection are trained (stages 1 and 2, with the video abstractor). A silent video, or one without a
sound track, is read as 30 s of silence, so every video carries the same number of tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ..abstractor import QueryBranch
from ..config import AbstractorConfig, AudioConfig
from ..errors import ConfigError, InputError, ModelLoadError
from .decode import SAMPLE_RATE

__all__ = ["AudioAbstractor", "AudioEncoder"]


class AudioEncoder(nn.Module):
    """A frozen Whisper encoder and its feature extractor: waveforms → features (B, S, D_a)."""

    def __init__(self, encoder: nn.Module, feature_extractor) -> None:  # noqa: ANN001 - a WhisperFeatureExtractor
        super().__init__()
        self.encoder = encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.feature_extractor = feature_extractor

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> AudioEncoder:
        from transformers import WhisperFeatureExtractor, WhisperModel

        try:
            extractor = WhisperFeatureExtractor.from_pretrained(name_or_path)
            encoder = WhisperModel.from_pretrained(name_or_path, dtype=dtype).get_encoder()
        except OSError as e:
            raise ModelLoadError(f"cannot load the audio encoder {name_or_path!r}: {' '.join(str(e).split())}") from None
        return cls(encoder.to(device), extractor)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.d_model)

    @property
    def positions(self) -> int:
        return int(self.encoder.config.max_source_positions)

    def train(self, mode: bool = True) -> AudioEncoder:
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout, ever
        return self

    @torch.no_grad()
    def forward(self, waveforms: Sequence[np.ndarray | None]) -> torch.Tensor:
        """Mono float32 waveforms at 16 kHz (None: silence), each cut to 30 s → (B, S, D_a)."""
        samples = [np.zeros(SAMPLE_RATE, np.float32) if w is None or not len(w) else np.asarray(w, np.float32)
                   for w in waveforms]
        mel = self.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        weight = next(self.encoder.parameters())
        return self.encoder(mel.to(weight.device, weight.dtype)).last_hidden_state  # (B, S, D_a)


class AudioAbstractor(nn.Module):
    """F_a (B, S, D_a) → audio tokens (B, N_a, D_llm): learnable queries over time-embedded encoder features.
    ``encoder_dim`` (D_a) and ``positions`` (S) are the frozen encoder's."""

    def __init__(self, config: AudioConfig, encoder_dim: int, positions: int) -> None:
        super().__init__()
        self.config = config
        self.encoder_dim, self.positions = encoder_dim, positions
        self.input_norm = nn.LayerNorm(encoder_dim)
        self.input_proj = nn.Linear(encoder_dim, config.hidden_size)
        self.time_embed = nn.Parameter(torch.randn(positions, config.hidden_size) * 0.02)  # (S, W)
        self.queries = QueryBranch(AbstractorConfig(
            encoder_dim=encoder_dim, hidden_size=config.hidden_size, num_layers=config.num_layers,
            num_heads=config.num_heads, num_queries=config.num_queries, output_dim=config.output_dim))
        self.output_proj = nn.Linear(config.hidden_size, config.output_dim)

    @property
    def num_tokens(self) -> int:
        return self.config.num_queries

    @torch.no_grad()
    def match_output_scale(self, target_std: float) -> None:
        """Fresh audio tokens get about the spread of the LLM's word embeddings (as the video abstractor's)."""
        nn.init.normal_(self.output_proj.weight, std=target_std / self.config.hidden_size**0.5)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 3:
            raise InputError(f"the audio abstractor expects features of shape (B, S, D), got {tuple(features.shape)}")
        _, s, d = features.shape
        if d != self.encoder_dim or s > self.positions:
            raise InputError(f"the audio abstractor was built for at most {self.positions} features of width "
                             f"{self.encoder_dim}, got {s} of width {d}")
        x = self.input_proj(self.input_norm(features.to(self.input_proj.weight.dtype)))  # (B, S, W)
        x = x + rearrange(self.time_embed[:s], "s w -> 1 s w")  # when each feature was heard
        return self.output_proj(self.queries(x))  # (B, N_a, D_llm)


def check_audio_config(config: AudioConfig, llm_width: int) -> None:
    """One ConfigError if the LLM does not fit the configured audio branch."""
    if config.output_dim != llm_width:
        raise ConfigError(f"audio.output_dim is {config.output_dim} but the LLM's embedding width is {llm_width}")
