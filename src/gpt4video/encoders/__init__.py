"""Frozen frame encoders: frames (T, H, W, 3) uint8 → features F_v (T, N, D_enc).

``open_nsfw`` (the offline default, a packaged ResNet-50 ONNX trunk) and the Hugging Face vision towers
``clip``, ``siglip`` (SigLIP, and SigLIP 2 at a fixed resolution), ``siglip2`` (SigLIP 2 NaFlex) and
``dinov2``. Importing this package registers them all (by importing their modules) and loads no model.
"""

from .base import ENCODERS, FrameEncoder, FrameScoreRecord, build_encoder
from .clip import CLIPFrameEncoder
from .dinov2 import DINOv2FrameEncoder
from .hf_vision import HFVisionEncoder, ImagePreprocessing
from .open_nsfw import OpenNSFWEncoder
from .siglip import SigLIPFrameEncoder
from .siglip2 import SigLIP2FrameEncoder

__all__ = ["ENCODERS", "FrameEncoder", "FrameScoreRecord", "build_encoder", "CLIPFrameEncoder", "DINOv2FrameEncoder",
           "HFVisionEncoder", "ImagePreprocessing", "OpenNSFWEncoder", "SigLIPFrameEncoder", "SigLIP2FrameEncoder"]
