"""Sounding clips: a beep (a steady tone) at some moment of a clip, given to the model as its sounds line
(:mod:`gpt4video.audio.events`), and the questions about it.

As with narration (:mod:`.narration`), training needs only the line: the model reads sounds as text timed to
its frames, never as sound. Evaluation beeps into the clip's audio track and finds the beep back with
:func:`gpt4video.audio.events.tone_regions` (``bench/beeps.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt4video.audio.events import format_sounds
from gpt4video.audio.subtitles import SpeechSegment, format_subtitles, segment_frames
from gpt4video.data.phrasing import _pick
from gpt4video.video.sampling import uniform_timestamps

from .dialogues import _turn
from .narration import narrated_segments, narration_text
from .qa import questions
from .scenes import Scene

#: The pitches a beep is given (Hz): all steady tones the detector hears alike.
BEEP_FREQUENCIES = (660.0, 880.0, 1000.0)
#: The shortest and longest beep (seconds).
BEEP_SECONDS = (0.2, 0.6)

#: The share of rows whose clip is narrated as well (a subtitles line before the sounds line).
SPOKEN_SHARE = 0.2
#: The reply to "When does the beep start?" when the clip has no beep.
NO_BEEP_REPLY = "There is no beep in this video."

_WHEN_QUESTIONS = ("When does the beep start?", "At which frame does the beep start?",
                   "When do you first hear the beep?", "When does the beep begin?")
_WHETHER_QUESTIONS = ("Is there a beep in this video?", "Can you hear a beep in this video?",
                      "Does this video have a beep?")


def beep_reply(frame: int) -> str:
    """The answer to "When does the beep start?" for a beep first heard at sampled frame ``frame``."""
    return f"The beep starts at frame {frame}."


def beep_timing(duration: float, rng: np.random.Generator) -> tuple[float, float]:
    """``(start, end)`` seconds of a beep of 0.2-0.6 s (at most half of the clip) at a random moment of it."""
    length = min(float(rng.uniform(*BEEP_SECONDS)), duration / 2)
    start = float(rng.uniform(0.0, duration - length))
    return round(start, 2), round(start + length, 2)


def sound_row(scene: Scene, video: str, rng: np.random.Generator, *, num_frames: int = 4) -> dict[str, Any]:
    """One question about clip ``video`` as if it beeped (or not), for ``sound_qa.jsonl``:

    - half: "When does the beep start?" (a few wordings), answered with the first frame the sounds line names
      (:func:`beep_reply`), or :data:`NO_BEEP_REPLY` for a clip without a beep;
    - a fifth: "Is there a beep in this video?", answered "Yes." or "No." (one clip in two beeps);
    - the rest: an ordinary question about the picture beside the sounds line (the line must not get in the
      way of what the model sees).

    Four in five clips asked the other kinds beep. A clip that beeps has the sounds line first in the user's
    text, as the subtitles line is; a silent one has none. One row in five is narrated as well: its subtitles
    line comes before the sounds line, the order the assistant gives a track's lines in.
    ``{"video", "turns", "sound"}``; ``sound`` is the beep's ``start`` and ``end`` (seconds) and ``frequency``
    (Hz), or ``None``, so evaluation can beep it into the clip. ``num_frames`` is how many frames the model samples (the line names them). Every draw is
    from ``rng``."""
    duration = scene.num_frames / scene.fps
    frame_times = uniform_timestamps(duration, num_frames)
    r = rng.random()
    asks_whether = 0.5 <= r < 0.7
    beeps = rng.random() < (0.5 if asks_whether else 0.8)
    start, end = beep_timing(duration, rng)
    frequency = float(_pick(rng, BEEP_FREQUENCIES))
    line = format_sounds([(start, end)], frame_times) if beeps else ""
    if r < 0.5:
        question = str(_pick(rng, _WHEN_QUESTIONS))
        first = segment_frames(SpeechSegment(start, end, ""), frame_times)[0]
        answer = beep_reply(first) if beeps else NO_BEEP_REPLY
    elif asks_whether:
        question = str(_pick(rng, _WHETHER_QUESTIONS))
        answer = "Yes." if beeps else "No."
    else:
        qa = _pick(rng, questions(scene, rng))
        question, answer = qa.question, qa.answer
    sound = {"start": start, "end": end, "frequency": frequency} if beeps else None
    # Now and then the clip is narrated too: its subtitles line comes first, as the assistant writes a track's
    # lines (subtitles, then sounds), so the model meets both in one turn.
    spoken = ""
    if rng.random() < SPOKEN_SHARE:
        spoken = format_subtitles(narrated_segments(narration_text(rng), duration, rng), frame_times)
    user = "\n".join(part for part in (spoken, line, question) if part)
    return {"video": video, "turns": [_turn("user", user, [0]), _turn("assistant", answer)], "sound": sound}
