"""The synthetic video world: a small world of rendered clips whose ground truth is exact (see
``synthetic-world.md``), with its captions, questions, dialogues and data splits.

One module a job: :mod:`.vocabulary` (the fixed words), :mod:`.backgrounds`, :mod:`.scenes` (sampling,
building from a description, split seeds), :mod:`.render` (pixels and clips), :mod:`.captioning`,
:mod:`.qa` (questions and answers), :mod:`.grading` (answer matching), :mod:`.prompts` (reading a prompt
back, for the offline renderer), :mod:`.dialogues` and :mod:`.splits` (writing a split). Inference code
imports from the module it uses (the prompt parser, the renderer); the package offers every name for data
building and tests.

Each name is imported from its module on first use, so importing the package (or one of its modules) loads
only what is used. No module shares a name with a function the package offers (``captions`` and
``questions`` are functions of :mod:`.captioning` and :mod:`.qa`; the renderer's function is
``render_frames``): importing a module sets the package's attribute of that name.
"""

import importlib
from typing import Any

# Where each name the package offers lives, including the private helpers the safety data builders and
# tests reach through it.
_HOMES = {
    "backgrounds": ("Background", "contrast"),
    "captioning": ("Chooser", "_describe", "_groups", "_rng_chooser", "caption", "captions", "object_orders"),
    "dialogues": ("_generation_exchange", "_random_spec", "dialogue"),
    "grading": ("answers_match", "normalize_answer"),
    "prompts": ("parse_prompt",),
    "qa": ("QA", "QA_ANSWERS", "QA_TYPES", "count_questions", "questions"),
    "render": ("SUPERSAMPLE", "render_frames", "write_clip"),
    "scenes": ("SPLITS", "ObjectSpec", "PromptSpec", "Scene", "SceneObject", "_overlap_too_much", "left_to_right",
               "sample_scene", "scene_from_spec", "split_seeds", "time_reversed"),
    "splits": ("build_split",),
    "vocabulary": ("BACKGROUND_COLORS", "BACKGROUND_KINDS", "BACKGROUND_RGB", "COLOR_RGB", "COLORS", "COUNTS",
                   "DIRECTIONS", "GRADIENT_DIRECTIONS", "MIN_CONTRAST", "MOTION_PHRASES", "MOTIONS", "NOISE_STD",
                   "REVERSED_MOTIONS", "SHAPES", "MotionPhrase"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(name for name in _MODULE_OF if not name.startswith("_"))


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)

