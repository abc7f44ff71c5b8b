"""SigLIP 2 NaFlex vision towers (``Siglip2VisionModel``) as frozen frame encoders.

NaFlex takes a variable grid of patches per image; the abstractor needs the same N tokens for every frame,
so every frame is resized to one square grid of g × g patches, g = ⌊√max_num_patches⌋ (the checkpoint's
``preprocessor_config.json``; 256 patches, g = 16, if it has none), and the model gets the whole grid with an
all-ones attention mask. Preprocessing otherwise as ``Siglip2ImageProcessor``: bilinear, mean and std 0.5.
Tokens: patches only (g² × D). Fixed-resolution SigLIP 2 checkpoints have the SigLIP architecture: load
those with ``siglip``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from einops import rearrange

from .base import ENCODERS
from .hf_vision import HFVisionEncoder, ImagePreprocessing


@ENCODERS.register("siglip2")
class SigLIP2FrameEncoder(HFVisionEncoder):
    """Frozen ``Siglip2VisionModel`` (NaFlex) on a fixed g × g patch grid: frames → (T, g², D)."""

    family = "SigLIP 2 (NaFlex)"
    model_classes = {"siglip2_vision_model": "Siglip2VisionModel", "siglip2": "Siglip2VisionModel"}
    always_interpolates = True  # it resizes its position embeddings to each grid itself

    def default_preprocessing(self, vision: Any, data: dict[str, Any]) -> ImagePreprocessing:
        max_patches = data.get("max_num_patches") or getattr(vision, "num_patches", 256)
        side = math.isqrt(int(max_patches)) * int(vision.patch_size)
        return ImagePreprocessing(resize=("exact", side, side), crop=None, mean=(0.5, 0.5, 0.5),
                                  std=(0.5, 0.5, 0.5), resample="bilinear")

    def _model_inputs(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        # pixels (B, 3, g·p, g·p) → patches (B, g², p·p·3), in Siglip2ImageProcessor's order (row, column, channel)
        p = self.patch_size
        g_h, g_w = pixels.shape[-2] // p, pixels.shape[-1] // p
        patches = rearrange(pixels, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        b = pixels.shape[0]
        mask = torch.ones(b, g_h * g_w, dtype=torch.long, device=pixels.device)  # (B, g²) every patch is real
        shapes = torch.tensor([[g_h, g_w]] * b, dtype=torch.long, device=pixels.device)  # (B, 2)
        return {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": shapes}
