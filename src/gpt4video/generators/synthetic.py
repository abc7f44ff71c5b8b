"""The offline default backend: renders prompts of the synthetic world exactly.

No text-to-video weights can be installed on the project's machines, so the default generator
reads a prompt of the synthetic world ("Two red circles move to the left on a gray background")
with :func:`~gpt4video.data.synthetic.parse_prompt` and draws it with the world's own renderer.
Whatever the prompt leaves open (colour, motion, background, sizes, positions) is chosen from the
seed. A prompt outside the vocabulary raises :class:`PromptNotSupported` telling the user how to
configure a real (diffusers) backend instead.

:class:`SyntheticImageGenerator` draws a still of the same world from an image prompt ("A green square
on a white background"): one frame in which every object stands still, so motion words may be left
out, and are ignored when present.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import TYPE_CHECKING, ClassVar

from gpt4video.errors import InputError

from .base import GENERATORS, IMAGE_GENERATORS, ImageGenerator, PromptNotSupported, VideoGenerator

if TYPE_CHECKING:
    import numpy as np

    from gpt4video.data.synthetic.scenes import PromptSpec

__all__ = ["UNSUPPORTED_IMAGE_PROMPT_HELP", "UNSUPPORTED_PROMPT_HELP", "SyntheticGenerator", "SyntheticImageGenerator"]

#: What the user is told when a prompt is outside the synthetic world.
UNSUPPORTED_PROMPT_HELP = (
    "the offline 'synthetic' renderer only draws the synthetic world (circles, squares and triangles "
    "in 7 colours that move, grow or shrink); to render other prompts configure a diffusers backend, "
    "e.g. --generator zeroscope --generator-model PATH_OR_HUB_ID"
)
#: What the user is told when an image prompt is outside the synthetic world.
UNSUPPORTED_IMAGE_PROMPT_HELP = (
    "the offline 'synthetic' image renderer only draws stills of the synthetic world (circles, squares and "
    "triangles in 7 colours on plain, noisy or gradient backgrounds); to draw other prompts configure a diffusers "
    "backend, e.g. --image-generator sd15 --image-generator-model PATH_OR_HUB_ID"
)
# "An image of", "a picture of", ... before what to draw: not part of the scene.
_IMAGE_NOUN = re.compile(r"^\W*(?:(?:an?|the)\s+)?(?:image|photo|photograph|picture|drawing|illustration|still)\s+of\s+",
                         re.IGNORECASE)


@GENERATORS.register("synthetic")
class SyntheticGenerator(VideoGenerator):
    """Draws prompts of the synthetic world (see ``synthetic-world.md``); needs no weights.

    Any size from 16 px and any length from 2 frames works (at least 64 × 64 and 8 frames is
    recommended so that shapes and motion are clear); a motion spans the whole clip whatever its
    length. ``negative_prompt`` is ignored. With a seed the clip is reproducible; without one a
    fresh seed is drawn. It takes no options.
    """

    name = "synthetic"
    min_size: ClassVar[int] = 16
    min_frames: ClassVar[int] = 2
    fps: ClassVar[float] = 8.0

    def _generate(
        self,
        prompt: str,
        *,
        num_frames: int,
        height: int,
        width: int,
        seed: int | None,
        negative_prompt: str | None,
        progress: bool,
    ) -> np.ndarray:
        spec = _parse(prompt, UNSUPPORTED_PROMPT_HELP, self.name)
        return _render(spec, "video generator 'synthetic'", seed, width, height, num_frames, self.fps)


@IMAGE_GENERATORS.register("synthetic")
class SyntheticImageGenerator(ImageGenerator):
    """Draws a still of the synthetic world from an image prompt; needs no weights.

    The still is one frame of the world's renderer with every object standing still, so motion words in
    the prompt ("moves left", "grows") are read and ignored. A leading "an image of" / "a picture of" is
    not part of the scene. Any size from 16 px works (at least 64 x 64 is recommended). ``negative_prompt``
    is ignored. With a seed the image is reproducible; without one a fresh seed is drawn. It takes no options.
    """

    name = "synthetic"
    min_size: ClassVar[int] = 16

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
        spec = _parse(_IMAGE_NOUN.sub("", prompt), UNSUPPORTED_IMAGE_PROMPT_HELP, self.name, shown=prompt)
        still = dataclasses.replace(spec, objects=tuple(dataclasses.replace(o, motion="still") for o in spec.objects))
        # The world's clips have at least two frames; a still is the first frame of a clip in which nothing moves.
        return _render(still, "image generator 'synthetic'", seed, width, height, 2, SyntheticGenerator.fps)[0]


def _parse(prompt: str, help: str, generator: str, *, shown: str | None = None) -> PromptSpec:
    """The scene ``prompt`` describes; PromptNotSupported (with ``help``) for a prompt outside the world."""
    # Imported here: registering the backends (every command line does) needs none of the synthetic world.
    from gpt4video.data.synthetic.prompts import parse_prompt

    spec = parse_prompt(prompt)
    if spec is None:
        shown = prompt if shown is None else shown
        raise PromptNotSupported(f"cannot render {_shorten(shown)!r}: {help}", prompt=shown, generator=generator)
    return spec


def _render(spec: PromptSpec, who: str, seed: int | None, width: int, height: int, num_frames: int,
            fps: float) -> np.ndarray:
    """``(num_frames, height, width, 3)`` uint8 frames of ``spec``, whatever it leaves open chosen from ``seed``."""
    from gpt4video.data.synthetic.render import render_frames
    from gpt4video.data.synthetic.scenes import scene_from_spec

    if seed is None:
        seed = secrets.randbelow(2**31 - 1)
    try:
        scene = scene_from_spec(spec, seed=seed, width=width, height=height, num_frames=num_frames, fps=fps)
    except RuntimeError as e:  # the objects do not fit in a very small frame
        raise InputError(f"{who}: {e}; use a larger frame (at least 64 x 64)") from None
    return render_frames(scene)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
