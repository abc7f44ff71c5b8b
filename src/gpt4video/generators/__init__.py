"""Text-to-video backends behind one call (the gallery of paper §3.4).

``build_generator(name, **options)`` makes one; ``GENERATORS.names()`` lists them. "synthetic"
(the offline default) draws the synthetic world; the others wrap diffusers pipelines and import
diffusers only when first used (``pip install 'gpt4video[gen]'``).
"""

from __future__ import annotations

from .base import DTYPES, GENERATORS, GeneratorConfig, PromptNotSupported, VideoGenerator, build_generator
from .diffusers_backends import (
    AnimateDiffGenerator,
    CogVideoXGenerator,
    DiffusersGenerator,
    LTXGenerator,
    ModelScopeGenerator,
    TextToVideoZeroGenerator,
    WanGenerator,
    ZeroscopeGenerator,
    to_uint8_video,
)
from .synthetic import UNSUPPORTED_PROMPT_HELP, SyntheticGenerator

__all__ = [
    "DTYPES",
    "GENERATORS",
    "UNSUPPORTED_PROMPT_HELP",
    "AnimateDiffGenerator",
    "CogVideoXGenerator",
    "DiffusersGenerator",
    "GeneratorConfig",
    "LTXGenerator",
    "ModelScopeGenerator",
    "PromptNotSupported",
    "SyntheticGenerator",
    "TextToVideoZeroGenerator",
    "VideoGenerator",
    "WanGenerator",
    "ZeroscopeGenerator",
    "build_generator",
    "to_uint8_video",
]
