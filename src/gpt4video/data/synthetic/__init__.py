"""The synthetic video world: a small world of rendered clips whose ground truth is exact (see
``synthetic-world.md``), with its captions, questions, dialogues and data splits.

One module a job: :mod:`.vocabulary` (the fixed words), :mod:`.backgrounds`, :mod:`.scenes` (sampling,
building from a description, split seeds), :mod:`.render` (pixels and clips), :mod:`.captions`,
:mod:`.questions`, :mod:`.grading` (answer matching), :mod:`.prompts` (reading a prompt back, for the
offline renderer), :mod:`.dialogues` and :mod:`.splits` (writing a split). Inference code imports from
the module it uses (the prompt parser, the renderer); the package re-exports every name for data
building and tests.
"""

from .backgrounds import Background, contrast
from .captions import Chooser, _describe, _groups, _rng_chooser, caption, captions, object_orders
from .dialogues import _generation_exchange, _random_spec, dialogue
from .grading import answers_match, normalize_answer
from .prompts import parse_prompt
from .questions import QA, QA_ANSWERS, QA_TYPES, count_questions, questions
from .render import SUPERSAMPLE, render, write_clip
from .scenes import (
    SPLITS,
    ObjectSpec,
    PromptSpec,
    Scene,
    SceneObject,
    _overlap_too_much,
    left_to_right,
    sample_scene,
    scene_from_spec,
    split_seeds,
    time_reversed,
)
from .splits import build_split
from .vocabulary import (
    BACKGROUND_COLORS,
    BACKGROUND_KINDS,
    BACKGROUND_RGB,
    COLOR_RGB,
    COLORS,
    COUNTS,
    DIRECTIONS,
    GRADIENT_DIRECTIONS,
    MIN_CONTRAST,
    MOTION_PHRASES,
    MOTIONS,
    NOISE_STD,
    REVERSED_MOTIONS,
    SHAPES,
    MotionPhrase,
)

__all__ = [
    "BACKGROUND_COLORS",
    "BACKGROUND_KINDS",
    "BACKGROUND_RGB",
    "COLORS",
    "COLOR_RGB",
    "COUNTS",
    "MIN_CONTRAST",
    "MOTIONS",
    "MOTION_PHRASES",
    "QA",
    "QA_ANSWERS",
    "QA_TYPES",
    "REVERSED_MOTIONS",
    "SHAPES",
    "SPLITS",
    "Background",
    "MotionPhrase",
    "ObjectSpec",
    "PromptSpec",
    "Scene",
    "SceneObject",
    "answers_match",
    "build_split",
    "caption",
    "captions",
    "contrast",
    "dialogue",
    "normalize_answer",
    "object_orders",
    "parse_prompt",
    "questions",
    "render",
    "sample_scene",
    "scene_from_spec",
    "split_seeds",
    "time_reversed",
    "write_clip",
]
# The other names the package has always offered, and the private helpers the safety data builders and
# tests reach through it.
__all__ += [
    "DIRECTIONS",
    "GRADIENT_DIRECTIONS",
    "NOISE_STD",
    "SUPERSAMPLE",
    "Chooser",
    "count_questions",
    "left_to_right",
    "_describe",
    "_generation_exchange",
    "_groups",
    "_overlap_too_much",
    "_random_spec",
    "_rng_chooser",
]
