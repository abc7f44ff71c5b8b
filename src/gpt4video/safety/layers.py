"""The four safety layers, in the order a request meets them: the one vocabulary the pipeline
(``Reply.refused_by``), the policy (``Decision.stage``), the audit log and the benchmarks use.

- ``input``: the user's message, the recent conversation and the frames of attached videos, before the model runs;
- ``model``: the model's own learned refusal (corroborated by the input's suspicion score, see :mod:`.policy`);
- ``prompt``: each ``<video_prompt>`` and ``<image_prompt>`` the model writes, before a generator sees it;
- ``output``: the frames of each generated video, and each generated image, before it is written.
"""

from __future__ import annotations

INPUT, MODEL, PROMPT, OUTPUT = "input", "model", "prompt", "output"
LAYERS: tuple[str, ...] = (INPUT, MODEL, PROMPT, OUTPUT)
#: Layers whose checkers a policy config lists; the model layer is the model itself.
CHECKED_LAYERS: tuple[str, ...] = (INPUT, PROMPT, OUTPUT)
#: How reports name each layer.
LAYER_TITLES: dict[str, str] = {INPUT: "input checker", MODEL: "learned refusal (model)",
                                PROMPT: "prompt check", OUTPUT: "frame check (generated video)"}


def check_layer(layer: str) -> str:
    """``layer`` if it is one of :data:`LAYERS`; otherwise a ValueError naming the layers."""
    if layer not in LAYERS:
        raise ValueError(f"unknown safety layer {layer!r}; layers: {', '.join(LAYERS)}")
    return layer
