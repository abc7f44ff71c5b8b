"""A Hugging Face CLIP vision tower as a frozen frame encoder (the paper's choice: CLIP ViT-L/14).

No CLIP weights ship on PyPI, so this encoder loads a hub id (on connected machines, or when the hub cache
already holds it) or a local directory saved with ``save_pretrained``. A full ``CLIPModel`` checkpoint works
too: only its vision tower is loaded. Tokens: CLS + patches (ViT-L/14 at 224 px: 257 × 1024).

Preprocessing as ``CLIPImageProcessor`` does it: the shorter side resized to 224 (the checkpoint's
``preprocessor_config.json``; the model's ``image_size`` if it has none), bicubic, a center crop to a square,
OpenAI CLIP's mean/std (see :mod:`.hf_vision`).
"""

from __future__ import annotations

from typing import Any

from .base import ENCODERS
from .hf_vision import HFVisionEncoder, ImagePreprocessing

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@ENCODERS.register("clip")
class CLIPFrameEncoder(HFVisionEncoder):
    """Frozen ``CLIPVisionModel``: frames → hidden_states[config.select_layer], all tokens (CLS + patches).

    ``select_layer`` -1 is the last layer, -2 the penultimate (LLaVA's choice).
    """

    family = "CLIP"
    model_classes = {"clip_vision_model": "CLIPVisionModel", "clip": "CLIPVisionModel"}

    def default_preprocessing(self, vision: Any, data: dict[str, Any]) -> ImagePreprocessing:
        s = int(vision.image_size)
        return ImagePreprocessing(resize=("shortest_edge", s), crop=(s, s), mean=OPENAI_CLIP_MEAN,
                                  std=OPENAI_CLIP_STD, resample="bicubic")

    def prefix_tokens(self, vision: Any) -> int:
        return 1  # CLS
