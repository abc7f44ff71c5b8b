"""DINOv2 backbones (``Dinov2Model``, and ``Dinov2WithRegistersModel``) as frozen frame encoders.

Self-supervised, not text aligned: strong spatial features, which the abstractor must link to language.
Tokens: CLS, the register tokens (with-registers checkpoints), then the patches (ViT-L/14 at 224 px:
1 + 256 tokens × 1024). ``select_layer`` -1 is ``last_hidden_state`` (after the final layernorm); other
values index ``hidden_states``. The model resizes its position embeddings to any input size itself.

Preprocessing as its ``BitImageProcessor`` config does it: the shorter side resized to 256, bicubic, a center
crop of 224, ImageNet mean/std. With no preprocessor config: the crop is the model's ``image_size`` and the
shorter side is resized to 256/224 of it (see :mod:`.hf_vision`).
"""

from __future__ import annotations

from typing import Any

from .base import ENCODERS
from .hf_vision import HFVisionEncoder, ImagePreprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@ENCODERS.register("dinov2")
class DINOv2FrameEncoder(HFVisionEncoder):
    """Frozen ``Dinov2Model`` / ``Dinov2WithRegistersModel``: frames → (T, 1 + registers + patches, D)."""

    family = "DINOv2"
    model_classes = {"dinov2": "Dinov2Model", "dinov2_with_registers": "Dinov2WithRegistersModel"}
    always_interpolates = True

    def default_preprocessing(self, vision: Any, data: dict[str, Any]) -> ImagePreprocessing:
        crop = int(vision.image_size)
        return ImagePreprocessing(resize=("shortest_edge", round(crop * 256 / 224)), crop=(crop, crop),
                                  mean=IMAGENET_MEAN, std=IMAGENET_STD, resample="bicubic")

    def prefix_tokens(self, vision: Any) -> int:
        return 1 + int(getattr(vision, "num_register_tokens", 0) or 0)  # CLS + registers
