"""Evaluation: metrics and reports. :mod:`.synthetic` evaluates on a split of the synthetic world."""

from gpt4video.evaluation.synthetic import (
    CAPTION_METRICS,
    CAPTION_PROMPT,
    AnswerFn,
    assistant_answer_fn,
    caption_scores,
    check_split,
    contains_answer,
    detection_scores,
    evaluate_split,
    format_markdown,
    has_video_prompt,
    qa_scores,
    write_report,
)

__all__ = [
    "CAPTION_METRICS",
    "CAPTION_PROMPT",
    "AnswerFn",
    "assistant_answer_fn",
    "caption_scores",
    "check_split",
    "contains_answer",
    "detection_scores",
    "evaluate_split",
    "format_markdown",
    "has_video_prompt",
    "qa_scores",
    "write_report",
]
