"""Sounds that are not speech: where a track beeps, and the line that tells the LLM, timed to its frames.

The model is told about such sounds the way it is told about speech (:mod:`gpt4video.audio.subtitles`): one
line of text, first in the user's text of the turn that carries the video, naming the sampled frames
(counted from 1) shown while each sound is heard::

    Sounds: a beep (frames 2-3).
    Sounds: a beep (frame 2); a beep (frames 5-6).

The detector is the voice-activity detector's frame analysis (:mod:`gpt4video.audio.vad`) read the other
way round: the loud frames whose energy one narrow band holds (a steady tone) are joined, and runs too short
to be a beep are dropped. Two things differ from speech. A tone has no pauses, so only a gap of one frame (a
frame the tonal test misses) is bridged: speech's 0.3 s bridge joins the scattered tonal frames of voiced
speech into false beeps (about half of 200 eSpeak sentences, against 0-3 with one frame; ``bench/beeps.py``).
And a region is not padded, so its start is the tone's onset (to within a frame, 30 ms).

Training data builds the line with :func:`format_sounds` (:mod:`gpt4video.data.synthetic.sounds`); at
inference :meth:`gpt4video.audio.Transcriber.lines` adds it when ``SpeechConfig.sounds`` is on (the default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .subtitles import SOUNDS_PREFIX, SpeechSegment, frame_span
from .vad import VoiceActivity, analyse_frames, join_frames

__all__ = ["BEEP", "SOUNDS_PREFIX", "TONE_BRIDGE_SECONDS", "format_sounds", "tone_regions"]

#: What the line calls a steady tone.
BEEP = "a beep"
#: Gaps in a tone bridged beyond the one frame :func:`~gpt4video.audio.vad.join_frames` always bridges: none.
TONE_BRIDGE_SECONDS = 0.0


def tone_regions(samples: np.ndarray, sample_rate: int,
                 settings: VoiceActivity = VoiceActivity()) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each stretch of ``samples`` (mono float) that is loud and tonal: a beep.

    The same frames, thresholds and shortest length as :func:`~gpt4video.audio.vad.speech_regions`, keeping
    the frames it leaves out as tones; gaps of one frame are bridged (not ``settings.bridge_seconds``), and
    nothing is padded."""
    frames = analyse_frames(samples, sample_rate, settings)
    return join_frames(frames.loud & frames.tonal, frames, settings, bridge_seconds=TONE_BRIDGE_SECONDS,
                       pad_seconds=0.0)


def format_sounds(regions: Sequence[tuple[float, float]], frame_times: Sequence[float]) -> str:
    """The sounds line for ``regions`` (``(start, end)`` seconds of each beep); ``""`` when there is none.

    Each beep is timed as a stretch of speech is (:func:`~gpt4video.audio.subtitles.segment_frames`): the
    sampled frames shown while it sounds, or the frame nearest its middle."""
    parts = []
    for start, end in regions:
        parts.append(f"{BEEP} ({frame_span(SpeechSegment(start, end, BEEP), frame_times)})")
    return f"{SOUNDS_PREFIX} {'; '.join(parts)}." if parts else ""
