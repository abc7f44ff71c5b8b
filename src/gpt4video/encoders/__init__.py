"""Frozen frame encoders: frames (T, H, W, 3) uint8 → features F_v (T, N, D_enc).

``open_nsfw`` (the offline default, a packaged ResNet-50 ONNX trunk) and ``clip`` (a Hugging Face
CLIP vision tower). Importing this package registers both and loads no model.
"""

from . import clip, open_nsfw  # noqa: F401 - importing registers the encoders
from .base import ENCODERS, FrameEncoder, FrameScoreRecord, build_encoder
from .clip import CLIPFrameEncoder
from .open_nsfw import OpenNSFWEncoder

__all__ = ["ENCODERS", "FrameEncoder", "FrameScoreRecord", "build_encoder", "CLIPFrameEncoder", "OpenNSFWEncoder"]
