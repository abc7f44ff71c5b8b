"""SigLIP vision towers as frozen frame encoders (SigLIP, and SigLIP 2 at a fixed resolution).

SigLIP 2's fixed-resolution checkpoints (``google/siglip2-*-patch16-224`` and the like) have the SigLIP
architecture (``model_type`` ``siglip``) and load here; its NaFlex checkpoints load with ``siglip2``.
Tokens: patches only, no CLS (so400m/14 at 384 px: 729 × 1152). ``select_layer`` -1 is the tower's
``last_hidden_state`` (after its post-layernorm); other values index ``hidden_states``.

Preprocessing as ``SiglipImageProcessor`` does it: the whole frame resized to the model's square size
(bicubic, no crop, so the aspect ratio is not kept), mean and std 0.5 (see :mod:`.hf_vision`).
"""

from __future__ import annotations

from typing import Any

from .base import ENCODERS
from .hf_vision import HFVisionEncoder, ImagePreprocessing


@ENCODERS.register("siglip")
class SigLIPFrameEncoder(HFVisionEncoder):
    """Frozen ``SiglipVisionModel``: frames → (T, (S/p)², D)."""

    family = "SigLIP"
    model_classes = {"siglip_vision_model": "SiglipVisionModel", "siglip": "SiglipVisionModel"}

    def default_preprocessing(self, vision: Any, data: dict[str, Any]) -> ImagePreprocessing:
        s = int(vision.image_size)
        return ImagePreprocessing(resize=("exact", s, s), crop=None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                                  resample="bicubic")
