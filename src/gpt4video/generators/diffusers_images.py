"""Text-to-image backends on diffusers pipelines, loaded by hub id or local directory.

They draw the pictures the model asks for with ``<image_prompt>``. Install with ``pip install 'gpt4video[gen]'``;
nothing is imported or loaded until a backend is first used (or ``load()`` is called).

========  ==========================  =================================================  ==================================  ==========
name      diffusers pipeline          default checkpoint (``model``)                     licence of the checkpoint           native
========  ==========================  =================================================  ==================================  ==========
``sd15``  StableDiffusionPipeline     stable-diffusion-v1-5/stable-diffusion-v1-5        CreativeML OpenRAIL-M               512x512
``sdxl``  StableDiffusionXLPipeline   stabilityai/stable-diffusion-xl-base-1.0           CreativeML Open RAIL++-M            1024x1024
``sd3``   StableDiffusion3Pipeline    stabilityai/stable-diffusion-3.5-medium            Stability AI Community (gated)      1024x1024
``flux``  FluxPipeline                black-forest-labs/FLUX.1-schnell                   Apache-2.0 (FLUX.1-dev: non-        1024x1024
                                                                                         commercial)
``sana``  SanaPipeline                Efficient-Large-Model/Sana_1600M_1024px_BF16_      NVIDIA's own licence (check the     1024x1024
                                      diffusers                                          model card)
``auto``  AutoPipelineForText2Image   stable-diffusion-v1-5/stable-diffusion-v1-5        that of the checkpoint              -
========  ==========================  =================================================  ==================================  ==========

Licences are those published with the checkpoints when this was written; the model cards are authoritative.
``auto`` loads any diffusers text-to-image checkpoint (the pipeline class its ``model_index.json`` names) and,
unless ``num_inference_steps`` / ``guidance_scale`` are given, runs it with that pipeline's own defaults.

The options are those of the video backends (:class:`~gpt4video.generators.diffusers_backends.DiffusersBackend`):
``model``, ``dtype``, ``device``, ``cpu_offload``, ``num_inference_steps``, ``guidance_scale`` and ``extra``
(``variant``, ``scheduler``, ``vae_slicing``, ``vae_tiling``, ``call_kwargs``). Output is always exactly
``(height, width, 3)`` uint8: a size the family cannot make (SD: multiples of 8 px, SD3 and FLUX: 16, Sana:
32) is generated at the next valid size up and centre-cropped.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

from .base import IMAGE_GENERATORS, ImageGenerator
from .diffusers_backends import DiffusersBackend, _center_crop, _round_up, to_uint8_video

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "AutoImageGenerator",
    "DiffusersImageGenerator",
    "FluxImageGenerator",
    "SanaImageGenerator",
    "StableDiffusion3ImageGenerator",
    "StableDiffusionImageGenerator",
    "StableDiffusionXLImageGenerator",
]


class DiffusersImageGenerator(DiffusersBackend, ImageGenerator):
    """A text-to-image backend on a diffusers pipeline (one subclass per model family); its options are
    :class:`~gpt4video.generators.diffusers_backends.DiffusersBackend`'s."""

    kind = "image generator"

    def _size_multiple(self, pipe: Any) -> int:
        """Image sides the pipeline can make are multiples of this: the VAE's scale times the transformer's patch."""
        transformer = getattr(pipe, "transformer", None)
        patch = getattr(getattr(transformer, "config", None), "patch_size", 1) or 1
        return math.lcm(8, int(getattr(pipe, "vae_scale_factor", 8)) * int(patch))

    def _family_call_kwargs(self, pipe: Any) -> dict[str, Any]:
        return {}

    def _generate(
        self,
        prompt: str,
        *,
        height: int,
        width: int,
        seed: int | None,
        negative_prompt: str | None,
        progress: bool,
    ) -> np.ndarray:
        pipe = self.load()
        multiple = self._size_multiple(pipe)
        kwargs: dict[str, Any] = {"prompt": prompt, "height": _round_up(height, multiple),
                                  "width": _round_up(width, multiple), "num_images_per_prompt": 1,
                                  **self._family_call_kwargs(pipe)}
        if negative_prompt is not None and "negative_prompt" in inspect.signature(pipe.__call__).parameters:
            kwargs["negative_prompt"] = negative_prompt
        output = self._call_pipeline(pipe, kwargs, seed=seed, progress=progress, making=f"a {width}x{height} image",
                                     smaller="a smaller size")
        images = to_uint8_video(output)  # (1, H, W, 3): a batch of one image reads as a one-frame video
        if images.shape[1] < height or images.shape[2] < width:
            raise RuntimeError(f"{self.kind} {self.name!r}: the pipeline returned a {images.shape[2]}x{images.shape[1]} "
                               f"image for a request of {width}x{height}")
        return _center_crop(images[:1], height, width)[0]


@IMAGE_GENERATORS.register("sd15")
class StableDiffusionImageGenerator(DiffusersImageGenerator):
    """Stable Diffusion 1.5 through ``StableDiffusionPipeline``; best at 512x512."""

    name = "sd15"
    pipeline_class = "StableDiffusionPipeline"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    default_steps = 50
    default_guidance = 7.5


@IMAGE_GENERATORS.register("sdxl")
class StableDiffusionXLImageGenerator(DiffusersImageGenerator):
    """Stable Diffusion XL (base) through ``StableDiffusionXLPipeline``; best at 1024x1024. Its VAE overflows in
    float16: on a GPU use ``extra.variant: fp16`` with a float16-safe VAE, or dtype bfloat16."""

    name = "sdxl"
    pipeline_class = "StableDiffusionXLPipeline"
    default_model = "stabilityai/stable-diffusion-xl-base-1.0"
    default_steps = 40
    default_guidance = 5.0


@IMAGE_GENERATORS.register("sd3")
class StableDiffusion3ImageGenerator(DiffusersImageGenerator):
    """Stable Diffusion 3 / 3.5 (MMDiT; CLIP-L, CLIP-G and T5 text encoders); best at 1024x1024."""

    name = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    default_model = "stabilityai/stable-diffusion-3.5-medium"
    default_steps = 40
    default_guidance = 4.5
    accelerator_dtype = "bfloat16"


@IMAGE_GENERATORS.register("flux")
class FluxImageGenerator(DiffusersImageGenerator):
    """FLUX.1 (schnell by default: 4 steps, no guidance; for FLUX.1-dev set num_inference_steps 50 and
    guidance_scale 3.5); best at 1024x1024. Latents are packed in 2x2 patches, so sides are multiples of 16 px."""

    name = "flux"
    pipeline_class = "FluxPipeline"
    default_model = "black-forest-labs/FLUX.1-schnell"
    default_steps = 4
    default_guidance = 0.0
    accelerator_dtype = "bfloat16"

    def _size_multiple(self, pipe: Any) -> int:
        return int(getattr(pipe, "vae_scale_factor", 8)) * 2

    def _family_call_kwargs(self, pipe: Any) -> dict[str, Any]:
        return {"max_sequence_length": 256}  # schnell's limit; dev takes it too


@IMAGE_GENERATORS.register("sana")
class SanaImageGenerator(DiffusersImageGenerator):
    """Sana (linear DiT, Gemma-2 text encoder, 32x deep-compression autoencoder); best at 1024x1024."""

    name = "sana"
    pipeline_class = "SanaPipeline"
    default_model = "Efficient-Large-Model/Sana_1600M_1024px_BF16_diffusers"
    default_steps = 20
    default_guidance = 4.5
    accelerator_dtype = "bfloat16"


@IMAGE_GENERATORS.register("auto")
class AutoImageGenerator(DiffusersImageGenerator):
    """Any diffusers text-to-image checkpoint through ``AutoPipelineForText2Image`` (the pipeline its
    ``model_index.json`` names), with that pipeline's own steps and guidance unless they are given."""

    name = "auto"
    pipeline_class = "AutoPipelineForText2Image"
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    default_steps = None
    default_guidance = None

    @classmethod
    def _wraps(cls, pipe: Any) -> bool:
        return True  # whatever pipeline the checkpoint names
