"""Narrated clips: short spoken sentences over a clip, given to the model as its subtitles line
(:mod:`gpt4video.audio.subtitles`), and the questions about them.

The sentences are everyday English built from a small lexicon, so a speech synthesiser says them clearly
and a recogniser can be scored on them. Training needs only their text: the model reads speech as the
subtitles line, never as sound. Evaluation speaks them into the clip's audio track and recognises them back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpt4video.audio.subtitles import SpeechSegment, format_subtitles
from gpt4video.data.phrasing import _pick, classic
from gpt4video.video.sampling import uniform_timestamps

from .dialogues import _turn
from .qa import _wording, questions
from .scenes import Scene

_SUBJECTS = ("the dog", "a cat", "my friend", "the teacher", "our team", "the children", "a bird", "the old man",
             "my sister", "the farmer", "the baker", "a little girl", "the pilot", "my brother", "the doctor")
_VERBS = ("likes", "sees", "finds", "opens", "paints", "carries", "reads", "builds", "cleans", "sells", "wants",
          "brings", "watches", "needs", "moves")
_OBJECTS = ("the door", "a red box", "the green boat", "a small house", "the window", "some bread", "the old car",
            "a blue ball", "the garden", "a new book", "the letter", "a warm coat", "the big table", "some water")
_ENDINGS = ("", "", " today", " every morning", " in the park", " at night", " before lunch", " again")
_GREETINGS = ("hello and welcome", "look at this", "good morning everyone", "thank you for watching",
              "here we go", "watch closely now")

#: The reply to a question about speech when the clip has none.
NO_SPEECH_REPLY = "Nothing is said in this video."


def narration_text(rng: np.random.Generator) -> str:
    """A short sentence to speak: "the farmer opens the door today", or now and then a greeting."""
    if rng.random() < 0.15:
        return str(_pick(rng, _GREETINGS))
    return f"{_pick(rng, _SUBJECTS)} {_pick(rng, _VERBS)} {_pick(rng, _OBJECTS)}{_pick(rng, _ENDINGS)}"


def speech_reply(text: str) -> str:
    """The answer to "What does the narrator say?" when ``text`` is said."""
    return f'The narrator says "{text}".'


def narrated_segments(text: str, duration: float, rng: np.random.Generator) -> list[SpeechSegment]:
    """``text`` said once, starting in the first third of the clip and lasting about half of it."""
    start = float(rng.uniform(0.0, duration / 3))
    end = min(duration, start + float(rng.uniform(0.35, 0.65)) * duration)
    return [SpeechSegment(round(start, 2), round(end, 2), text)]


def narration_row(scene: Scene, video: str, rng: np.random.Generator, *, num_frames: int = 4,
                  phrasing: str = "train") -> dict[str, Any]:
    """One question about clip ``video`` as if it were narrated, for ``narration_qa.jsonl``:

    - six in ten: its narration is given as the subtitles line, and the user asks what is said;
    - a quarter: the same subtitles, and an ordinary question about the picture (the line must not get in
      the way of what the model sees);
    - the rest: no subtitles, and the user asks what is said (:data:`NO_SPEECH_REPLY`).

    ``{"video", "turns", "narration"}``; ``narration`` is the spoken text (``None`` for a silent clip) and
    its timing, so evaluation can speak it into the clip. ``num_frames`` is how many frames the model
    samples (the subtitles line names them)."""
    wording = _wording(phrasing, rng)
    duration = scene.num_frames / scene.fps
    r = rng.random()
    text = narration_text(rng)
    segments = narrated_segments(text, duration, rng)
    subtitles = format_subtitles(segments, uniform_timestamps(duration, num_frames))
    if r < 0.85:
        if r < 0.6:
            question = wording.say("speech", _pick(rng, classic("speech"))).text
            answer = speech_reply(text)
        else:
            qa = _pick(rng, questions(scene, rng, phrasing=phrasing))
            question, answer = qa.question, qa.answer
        narration: dict[str, Any] | None = {"text": text, "segments": [list(s) for s in segments]}
        user = f"{subtitles}\n{question}"
    else:
        question = wording.say("speech", _pick(rng, classic("speech"))).text
        answer, narration, user = NO_SPEECH_REPLY, None, question
    return {"video": video, "turns": [_turn("user", user, [0]), _turn("assistant", answer)], "narration": narration}
