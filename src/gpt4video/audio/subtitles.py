"""Subtitles: what is said in a video, and at which of its sampled frames, as one line of the user's turn.

The LLM reads speech the way current video benchmarks give it in their "with subtitles" setting: as
text beside the video. One line, first in the user's text of the turn that carries the video::

    Subtitles: "the red ball" (frames 2-4); "look at it go" (frame 7).

In a conversation with more than one video or audio file, each line names its source, numbered in the
order attached (:func:`name_source`)::

    Subtitles (video 2): "look at it go" (frame 7).

Frames are counted from 1 over the frames the model sees, so a question about *when* something is
said can be answered in the frames' terms. The training dialogues and inference build the line with
:func:`format_subtitles`, so both always agree on its form. Sounds that are not speech have a line of the
same form, ``Sounds: a beep (frames 2-3).`` (:mod:`gpt4video.audio.events`); :func:`name_source` names
either line's source.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["SpeechSegment", "format_subtitles", "frame_span", "name_source", "segment_frames", "spoken_words"]

SUBTITLES_PREFIX = "Subtitles:"
SOUNDS_PREFIX = "Sounds:"  # the line of sounds that are not speech (gpt4video.audio.events)
#: One quoted segment of a subtitles line, with the frames it is timed to.
_SEGMENT = re.compile(r'"(.*?)" \((?:frame \d+|frames \d+-\d+)\)(?:; |\.$)')


class SpeechSegment(NamedTuple):
    """One stretch of speech: its start and end in seconds from the video's start, and its words."""

    start: float
    end: float
    text: str


def segment_frames(segment: SpeechSegment, frame_times: Sequence[float]) -> tuple[int, int]:
    """The first and last sampled frame (1-based) shown while ``segment`` is spoken.

    A segment shorter than the gap between two frames gets the frame nearest its middle.
    """
    if not frame_times:
        raise ValueError("frame_times is empty: a segment needs at least one sampled frame to be timed to")
    inside = [i for i, t in enumerate(frame_times) if segment.start <= t <= segment.end]
    if inside:
        return inside[0] + 1, inside[-1] + 1
    middle = (segment.start + segment.end) / 2
    nearest = min(range(len(frame_times)), key=lambda i: abs(frame_times[i] - middle))
    return nearest + 1, nearest + 1


def frame_span(segment: SpeechSegment, frame_times: Sequence[float]) -> str:
    """Where ``segment`` falls in the sampled frames, as the lines say it: "frame 3" or "frames 2-4"."""
    first, last = segment_frames(segment, frame_times)
    return f"frame {first}" if first == last else f"frames {first}-{last}"


def format_subtitles(segments: Sequence[SpeechSegment], frame_times: Sequence[float]) -> str:
    """The subtitles line for ``segments`` (empty text is skipped); ``""`` when nothing is said."""
    parts = []
    for segment in segments:
        words = " ".join(segment.text.split())
        if not words:
            continue
        parts.append(f'"{words}" ({frame_span(segment, frame_times)})')
    return f"{SUBTITLES_PREFIX} {'; '.join(parts)}." if parts else ""


def name_source(line: str, source: str) -> str:
    """A subtitles or sounds line that says where it comes from: ``Subtitles (video 2): ...`` or
    ``Sounds (video 2): ...`` for ``source="video 2"``."""
    prefix = next((p for p in (SUBTITLES_PREFIX, SOUNDS_PREFIX) if line.startswith(p)), None)
    if prefix is None:
        raise ValueError(f"not a subtitles line or a sounds line: {line[:40]!r}")
    return f"{prefix[:-1]} ({source}):{line[len(prefix):]}"


def spoken_words(line: str) -> str:
    """The words a subtitles line (as :func:`format_subtitles` or :func:`name_source` wrote it) quotes, its
    segments joined by spaces, without the line's form; ``""`` for any other line (a sounds line says no words).

    The input safety check reads these: the line's own form is no part of what anyone said."""
    head, sep, rest = line.partition(": ")
    if not sep or not (head + ":" == SUBTITLES_PREFIX or head.startswith(SUBTITLES_PREFIX[:-1] + " (")):
        return ""
    return " ".join(m.group(1) for m in _SEGMENT.finditer(rest))
