"""The video abstractor (GPT4Video paper §3.2): frame features F_v → a fixed number of video tokens.

Two branches, each a stack of cross-attention layers whose learnable queries attend over the
concatenation of all frame features and the queries themselves:

    F_s = CrossAttn(Q_s, [F_v; Q_s], [F_v; Q_s])      spatial queries, keys carry patch-index embeddings
    F_t = CrossAttn(Q_t, [F_v; Q_t], [F_v; Q_t])      temporal queries, keys carry frame-index embeddings
    F̂ = F_s + F_t          (N_s = N_t = Nq)
    F_video = W F̂ + b      into the LLM's embedding width

Attention has no notion of order, so without the position embeddings the direction of motion could
not be learned: the temporal branch sees which frame each feature came from, the spatial branch
which patch. With ``joint_positions`` (the shipped default) both branches see both, so either can
relate where an object is to when: the direction of a motion is exactly that.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .config import AbstractorConfig
from .errors import InputError


def _add(x: torch.Tensor, *positions: torch.Tensor | None) -> torch.Tensor:
    """x plus every position embedding that is switched on (each broadcasts over x)."""
    for p in positions:
        if p is not None:
            x = x + p
    return x


class CrossAttentionLayer(nn.Module):
    """Pre-norm block: queries attend over [context; queries], then a feed-forward network."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, num_heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width), nn.Dropout(dropout)
        )

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # queries: (B, Nq, W); context: (B, L, W) with L = T·N frame features
        q = self.norm_q(queries)
        kv = torch.cat([self.norm_kv(context), q], dim=1)  # (B, L + Nq, W): [F_v; Q]
        attended, _ = self.attn(q, kv, kv, need_weights=False)
        queries = queries + attended
        return queries + self.mlp(self.norm_mlp(queries))  # (B, Nq, W)


class QueryBranch(nn.Module):
    """One branch: Nq learnable queries refined by ``num_layers`` cross-attention layers."""

    def __init__(self, config: AbstractorConfig) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(config.num_queries, config.hidden_size) * 0.02)  # (Nq, W)
        self.layers = nn.ModuleList(
            CrossAttentionLayer(config.hidden_size, config.num_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.num_layers)
        )
        self.norm_out = nn.LayerNorm(config.hidden_size)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        # context: (B, T·N, W)
        q = self.queries.unsqueeze(0).expand(context.shape[0], -1, -1)  # (B, Nq, W)
        for layer in self.layers:
            q = layer(q, context)
        return self.norm_out(q)  # (B, Nq, W)


class VideoAbstractor(nn.Module):
    """F_v (B, T, N, D_enc) → video tokens (B, Nq, D_llm). See the module docstring."""

    def __init__(self, config: AbstractorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.input_norm = nn.LayerNorm(config.encoder_dim) if config.input_norm else nn.Identity()
        self.input_proj = nn.Linear(config.encoder_dim, width)
        self.spatial = QueryBranch(config) if config.use_spatial_queries else None
        self.temporal = QueryBranch(config) if config.use_temporal_queries else None
        # Position embeddings, added to the keys/values of one branch each.
        self.patch_embed = (
            nn.Parameter(torch.zeros(config.tokens_per_frame, width)) if config.spatial_position else None
        )  # (N, W)
        self.frame_embed = (
            nn.Parameter(torch.zeros(config.max_frames, width)) if config.temporal_position else None
        )  # (T_max, W)
        self.output_proj = nn.Linear(width, config.output_dim)  # W F̂ + b
        self._init_positions()

    def _init_positions(self) -> None:
        for p in (self.patch_embed, self.frame_embed):
            if p is not None:
                nn.init.normal_(p, std=self.config.position_init_std)

    @torch.no_grad()
    def match_output_scale(self, target_std: float) -> None:
        """Initialise the output projection so fresh video tokens have about the spread of the LLM's word
        embeddings (target_std); far larger tokens would swamp the prompt before any training."""
        nn.init.normal_(self.output_proj.weight, std=target_std / self.config.hidden_size**0.5)
        nn.init.zeros_(self.output_proj.bias)

    @property
    def num_tokens(self) -> int:
        return self.config.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, T, N, D_enc) or (T, N, D_enc) for a single video → (B, Nq, D_llm) or (Nq, D_llm)."""
        single = features.dim() == 3
        if single:
            features = features.unsqueeze(0)  # (1, T, N, D_enc)
        if features.dim() != 4:
            raise InputError(f"abstractor expects features of shape (B, T, N, D), got {tuple(features.shape)}")
        _, t, n, d = features.shape
        cfg = self.config
        if d != cfg.encoder_dim:
            raise InputError(f"abstractor expects feature width {cfg.encoder_dim}, got {d}")
        if n != cfg.tokens_per_frame:
            raise InputError(f"abstractor expects {cfg.tokens_per_frame} tokens per frame, got {n}")
        if t > cfg.max_frames:
            raise InputError(f"abstractor was built for at most {cfg.max_frames} frames, got {t}")

        x = self.input_proj(self.input_norm(features.to(self.input_proj.weight.dtype)))  # (B, T, N, W)
        where = self.patch_embed[None, None] if self.patch_embed is not None else None  # (1, 1, N, W)
        when = self.frame_embed[None, :t, None] if self.frame_embed is not None else None  # (1, T, 1, W)
        joint = cfg.joint_positions
        tokens = None
        if self.spatial is not None:
            ctx = _add(x, where, when if joint else None)
            f_s = self.spatial(rearrange(ctx, "b t n w -> b (t n) w"))  # (B, Nq, W)
            tokens = f_s
        if self.temporal is not None:
            ctx = _add(x, when, where if joint else None)
            f_t = self.temporal(rearrange(ctx, "b t n w -> b (t n) w"))  # (B, Nq, W)
            tokens = f_t if tokens is None else tokens + f_t  # F̂ = F_s + F_t
        out = self.output_proj(tokens)  # (B, Nq, D_llm)
        return out[0] if single else out
