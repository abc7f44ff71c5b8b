"""The offline default backend: renders prompts of the synthetic world exactly.

No text-to-video weights can be installed on the project's machines, so the default generator
reads a prompt of the synthetic world ("Two red circles move to the left on a gray background")
with :func:`~gpt4video.data.synthetic.parse_prompt` and draws it with the world's own renderer.
Whatever the prompt leaves open (colour, motion, background, sizes, positions) is chosen from the
seed. A prompt outside the vocabulary raises :class:`PromptNotSupported` telling the user how to
configure a real (diffusers) backend instead.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, ClassVar

from gpt4video.errors import InputError

from .base import GENERATORS, PromptNotSupported, VideoGenerator

if TYPE_CHECKING:
    import numpy as np

__all__ = ["UNSUPPORTED_PROMPT_HELP", "SyntheticGenerator"]

#: What the user is told when a prompt is outside the synthetic world.
UNSUPPORTED_PROMPT_HELP = (
    "the offline 'synthetic' renderer only draws the synthetic world (circles, squares and triangles "
    "in 7 colours that move, grow or shrink); to render other prompts configure a diffusers backend, "
    "e.g. --generator zeroscope --generator-model PATH_OR_HUB_ID"
)


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
        # Imported here: registering the backend (every command line does) needs none of the synthetic world.
        from gpt4video.data.synthetic.prompts import parse_prompt
        from gpt4video.data.synthetic.render import render_frames
        from gpt4video.data.synthetic.scenes import scene_from_spec

        spec = parse_prompt(prompt)
        if spec is None:
            raise PromptNotSupported(
                f"cannot render {_shorten(prompt)!r}: {UNSUPPORTED_PROMPT_HELP}", prompt=prompt, generator=self.name
            )
        if seed is None:
            seed = secrets.randbelow(2**31 - 1)
        try:
            scene = scene_from_spec(spec, seed=seed, width=width, height=height, num_frames=num_frames, fps=self.fps)
        except RuntimeError as e:  # the objects do not fit in a very small frame
            raise InputError(f"video generator 'synthetic': {e}; use a larger frame (at least 64 x 64)") from None
        return render_frames(scene)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
