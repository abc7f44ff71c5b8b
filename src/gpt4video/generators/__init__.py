"""Text-to-video and text-to-image backends behind one call each (the gallery of paper §3.4).

``build_generator(name, **options)`` makes a video backend, ``build_image_generator(name, **options)`` an
image backend; ``GENERATORS.names()`` and ``IMAGE_GENERATORS.names()`` list them. "synthetic" (the offline
default of both) draws the synthetic world; the others wrap diffusers pipelines and import diffusers only
when first used (``pip install 'gpt4video[gen]'``).
"""

from __future__ import annotations

from .base import (
    DTYPES,
    GENERATORS,
    IMAGE_GENERATORS,
    GeneratorConfig,
    ImageGenerator,
    ImageGeneratorConfig,
    PromptNotSupported,
    VideoGenerator,
    build_generator,
    build_image_generator,
)
from .diffusers_backends import (
    AnimateDiffGenerator,
    CogVideoXGenerator,
    DiffusersBackend,
    DiffusersGenerator,
    LTXGenerator,
    ModelScopeGenerator,
    TextToVideoZeroGenerator,
    WanGenerator,
    ZeroscopeGenerator,
    to_uint8_video,
)
from .diffusers_images import (
    AutoImageGenerator,
    DiffusersImageGenerator,
    FluxImageGenerator,
    SanaImageGenerator,
    StableDiffusion3ImageGenerator,
    StableDiffusionImageGenerator,
    StableDiffusionXLImageGenerator,
)
from .synthetic import UNSUPPORTED_IMAGE_PROMPT_HELP, UNSUPPORTED_PROMPT_HELP, SyntheticGenerator, SyntheticImageGenerator

__all__ = [
    "DTYPES",
    "GENERATORS",
    "IMAGE_GENERATORS",
    "UNSUPPORTED_IMAGE_PROMPT_HELP",
    "UNSUPPORTED_PROMPT_HELP",
    "AnimateDiffGenerator",
    "AutoImageGenerator",
    "CogVideoXGenerator",
    "DiffusersBackend",
    "DiffusersGenerator",
    "DiffusersImageGenerator",
    "FluxImageGenerator",
    "GeneratorConfig",
    "ImageGenerator",
    "ImageGeneratorConfig",
    "LTXGenerator",
    "ModelScopeGenerator",
    "PromptNotSupported",
    "SanaImageGenerator",
    "StableDiffusion3ImageGenerator",
    "StableDiffusionImageGenerator",
    "StableDiffusionXLImageGenerator",
    "SyntheticGenerator",
    "SyntheticImageGenerator",
    "TextToVideoZeroGenerator",
    "VideoGenerator",
    "WanGenerator",
    "ZeroscopeGenerator",
    "build_generator",
    "build_image_generator",
    "to_uint8_video",
]
