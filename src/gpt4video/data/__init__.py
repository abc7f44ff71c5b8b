"""Data sets: the synthetic video world (:mod:`gpt4video.data.synthetic`), the JSONL schemas and public-format
loaders (:mod:`.formats`, :mod:`.loaders`) and the encoder feature cache (:mod:`.feature_cache`).

Each name is imported from its module on first use, so importing the package or one of its modules (say the
JSONL schemas) does not load the synthetic world's builders or the feature cache (and torch).
"""

import importlib
from typing import Any

# Where each name the package offers lives.
_HOMES = {
    "synthetic": ("BACKGROUND_COLORS", "BACKGROUND_KINDS", "BACKGROUND_RGB", "COLORS", "COLOR_RGB", "COUNTS",
                  "MIN_CONTRAST", "MOTIONS", "MOTION_PHRASES", "QA", "QA_ANSWERS", "QA_TYPES", "SHAPES", "SPLITS",
                  "Background", "MotionPhrase", "ObjectSpec", "PromptSpec", "Scene", "SceneObject", "answers_match",
                  "build_split", "caption", "captions", "contrast", "count_questions", "dialogue", "normalize_answer",
                  "parse_prompt", "questions", "render_frames", "sample_scene", "scene_from_spec", "split_seeds",
                  "write_clip"),
    "feature_cache": ("CacheStats", "FeatureCache", "PrecomputeResult", "encoder_identity"),
    "formats": ("CAPTION_INSTRUCTIONS", "Example", "LoadResult", "RowError", "read_jsonl", "sample_caption"),
    "loaders": ("detect_format", "load_dataset", "read_videochat_json", "read_webvid_csv"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
