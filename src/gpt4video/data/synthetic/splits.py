"""Writes a data split of the synthetic world: its clips and the JSONL files of captions, questions,
dialogues and ground truth."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt4video.config import atomic_write_text
from gpt4video.jsonl import jsonl_text

from .captioning import captions, object_orders
from .dialogues import _turn, dialogue, edit_dialogue, image_request
from .narration import narration_row
from .qa import QA, count_questions, questions
from .render import write_clip
from .scenes import Scene, _check_resolution, left_to_right, sample_scene, split_seeds, time_reversed
from .sounds import sound_row


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; leave an identical
    file untouched."""
    if path.is_file():
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
    atomic_write_text(path, text)


def _clip_is_valid(path: Path, scene: Scene) -> bool:
    """Whether ``path`` is a readable video of the scene's size and length."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    from gpt4video.errors import VideoError
    from gpt4video.video.decode import probe

    try:
        info = probe(path)
    except VideoError:
        return False
    return (info.width, info.height) == (scene.width, scene.height) and info.num_frames in (None, scene.num_frames)


def _qa_conversations(video: str, qas: Sequence[QA], rng: np.random.Generator, per_row: int = 4) -> list[dict]:
    """A clip's questions in shuffled order, several per conversation (``video`` attached to the first turn).

    Training on these costs one pass over the video tokens for several answers instead of one each.
    """
    order = rng.permutation(len(qas))
    rows = []
    for start in range(0, len(order), per_row):
        turns: list[dict[str, Any]] = []
        for k, i in enumerate(order[start : start + per_row]):
            turns.append(_turn("user", qas[i].question, [0] if k == 0 else []))
            turns.append(_turn("assistant", qas[i].answer))
        rows.append({"video": video, "turns": turns})
    return rows


def _dialogue_row(scenes: Sequence[Scene], videos: Sequence[str], i: int, phrasing: str) -> dict[str, Any]:
    """Clip ``i``'s row of ``dialogues.jsonl``: a dialogue about it and the next clip, a generation request,
    or one about it alone, as its seed decides; the user's turns worded by ``phrasing``."""
    scene = scenes[i]
    g = np.random.default_rng([scene.seed, 3])
    r = g.random()
    if r < 0.25 and len(scenes) > 1:
        j = (i + 1) % len(scenes)
        return {"videos": [videos[i], videos[j]], "turns": dialogue([scene, scenes[j]], g, phrasing=phrasing)}
    if r < 0.45:
        return {"videos": [], "turns": dialogue([], g, phrasing=phrasing)}
    return {"videos": [videos[i]], "turns": dialogue([scene], g, phrasing=phrasing)}


def _request_rows(seeds: Sequence[int], phrasing: str) -> tuple[list[dict], list[dict]]:
    """``generation_requests.jsonl`` and ``image_requests.jsonl``: for every other clip seed, a video
    request dialogue and a picture request, with no clip; the user's turns worded by ``phrasing``."""
    videos = [{"videos": [], "turns": dialogue([], np.random.default_rng([seed, 6]), phrasing=phrasing)}
              for seed in seeds[::2]]
    images = [{"videos": [], "turns": image_request(np.random.default_rng([seed, 7]), phrasing=phrasing)}
              for seed in seeds[::2]]
    return videos, images


def _edit_rows(scenes: Sequence[Scene], videos: Sequence[str]) -> list[dict]:
    """``edit_requests.jsonl``: for every clip that offers a change, a conversation asking for a changed
    version of it (:func:`~.dialogues.edit_dialogue`)."""
    rows = []
    for scene, video in zip(scenes, videos):
        turns = edit_dialogue(scene, np.random.default_rng([scene.seed, 9]))
        if turns is not None:
            rows.append({"videos": [video], "turns": turns})
    return rows


def _balanced_counts(several: list[dict], once: list[dict], rng: np.random.Generator) -> list[dict]:
    """All of ``several`` and half as many of ``once`` (drawn at random), shuffled."""
    keep = sorted(rng.choice(len(once), size=min(len(once), len(several) // 2), replace=False).tolist())
    rows = several + [once[i] for i in keep]
    return [rows[i] for i in rng.permutation(len(rows))]


def build_split(
    out_dir: str | os.PathLike[str],
    split: str,
    num_clips: int,
    *,
    width: int = 128,
    height: int = 128,
    num_frames: int = 16,
    fps: float = 8.0,
    progress: bool = True,
) -> Path:
    """Render a data split into ``out_dir/split`` and return that directory.

    Writes ``clips/<seed>.mp4`` for each seed of :func:`split_seeds` and JSONL files whose
    ``video`` / ``videos`` paths are relative to the split directory:

    - ``captions.jsonl``: ``{"video", "caption", "captions", "grounding_captions",
      "reversed_grounding_captions"}``: the canonical caption naming objects from left to right, all
      paraphrases, the canonical caption with the objects in every order (the readings stage-0 grounding
      accepts), and the same for the clip played backwards (:func:`time_reversed`; stage 0's
      ``time_reversal`` trains on it too)
    - ``qa.jsonl``: ``{"video", "question", "answer", "type", "family"}``, one row per question, worded by the
      training template families (``family``: the one its wording comes from; :mod:`gpt4video.data.phrasing`)
    - ``qa_conversations.jsonl``: ``{"video", "turns"}``, a clip's questions shuffled, up to 4 per conversation
    - ``count_qa.jsonl``: rows like ``qa.jsonl``'s, shape and colour counts balanced by answer: every one the
      split's clips answer with 2 or 3 (:func:`count_questions`) and half as many answered 1, drawn at random
      (in ``qa.jsonl`` six in seven are answered 1, and a model trained on it learns to say 1)
    - ``dialogues.jsonl``: ``{"videos": [paths], "turns": [{"role", "text", "videos"}]}``,
      ``turns[i]["videos"]`` indexing the row's ``videos``
    - ``scenes.jsonl``: ``{"video", "scene"}`` with the ground truth (:meth:`Scene.to_dict`)
    - ``generation_requests.jsonl`` and ``image_requests.jsonl``: rows like ``dialogues.jsonl``'s without a
      clip, a request for a video (sometimes with a change asked for after it) or for a picture
      (``<image_prompt>``), one of each for every other clip
    - ``narration_qa.jsonl``: ``{"video", "turns", "narration"}``, a question about each clip as if it were
      narrated, its speech given as the subtitles line (:func:`~.narration.narration_row`)
    - ``edit_requests.jsonl``: rows like ``dialogues.jsonl``'s, each asking for a changed version of its clip
      (a colour, a motion or the background), sometimes twice (:func:`~.dialogues.edit_dialogue`)
    - ``sound_qa.jsonl``: ``{"video", "turns", "sound"}``, a question about each clip as if it beeped (or not),
      the beep given as the sounds line (:func:`~.sounds.sound_row`); one file for every split, as its
      questions have no held-out wordings

    Every split but "train" also gets the files of out-of-template evaluation, written for it only:

    - ``qa_heldout.jsonl``: the rows of ``qa.jsonl`` (same clips, questions asked and answers, in the same
      order), worded by the held-out template families instead
    - ``dialogues_heldout.jsonl``: the rows of ``dialogues.jsonl`` (same course and replies), the user's
      turns worded by the held-out families
    - ``generation_requests_heldout.jsonl``, ``image_requests_heldout.jsonl`` and ``narration_qa_heldout.jsonl``:
      the same for those files (a request's prompt carries the user's own words for the objects, so its
      wording may differ; what it asks for does not)

    User turns of every file vary in wording (:mod:`gpt4video.data.phrasing`); replies are canonical.

    Every file is written atomically. Re-running is cheap and gives the same result: a clip
    already on disk that decodes at the right size and length is not rendered again, and a JSONL
    file whose content would not change is not rewritten.
    """
    from tqdm.auto import tqdm

    seeds = split_seeds(split, num_clips)
    _check_resolution(width, height, num_frames, fps)
    root = Path(out_dir) / split
    (root / "clips").mkdir(parents=True, exist_ok=True)

    scenes: list[Scene] = []
    videos: list[str] = []
    for seed in tqdm(seeds, desc=f"{split} clips", unit="clip", disable=not progress):
        scene = sample_scene(seed, width=width, height=height, num_frames=num_frames, fps=fps)
        relative = f"clips/{seed}.mp4"
        if not _clip_is_valid(root / relative, scene):
            write_clip(scene, root / relative)
        scenes.append(scene)
        videos.append(relative)

    heldout = split != "train"
    caption_rows, qa_rows, qa_conversation_rows, dialogue_rows, scene_rows = [], [], [], [], []
    heldout_qa_rows, heldout_dialogue_rows = [], []
    narration_rows, heldout_narration_rows = [], []
    sound_rows = []
    several, once = [], []  # count questions answered 2 or 3, and 1
    for i, (scene, video) in enumerate(zip(scenes, videos)):
        caption_rows.append({
            "video": video,
            "caption": captions(left_to_right(scene))[0],
            "captions": captions(scene),
            "grounding_captions": object_orders(scene),
            "reversed_grounding_captions": object_orders(time_reversed(scene)),
        })
        clip_qa = questions(scene, np.random.default_rng([scene.seed, 2]))
        qa_rows += [{"video": video, **qa.to_dict()} for qa in clip_qa]
        qa_conversation_rows += _qa_conversations(video, clip_qa, np.random.default_rng([scene.seed, 4]))
        for qa in count_questions(scene, np.random.default_rng([scene.seed, 5])):
            (once if qa.answer == "1" else several).append({"video": video, **qa.to_dict()})
        dialogue_rows.append(_dialogue_row(scenes, videos, i, "train"))
        narration_rows.append(narration_row(scene, video, np.random.default_rng([scene.seed, 8])))
        # Its own stream (2-9 are taken), so adding the file changes nothing else in the split.
        sound_rows.append(sound_row(scene, video, np.random.default_rng([scene.seed, 10])))
        if heldout:
            # The same questions and dialogues, worded by the held-out families only.
            same_qa = questions(scene, np.random.default_rng([scene.seed, 2]), phrasing="heldout")
            heldout_qa_rows += [{"video": video, **qa.to_dict()} for qa in same_qa]
            heldout_dialogue_rows.append(_dialogue_row(scenes, videos, i, "heldout"))
            heldout_narration_rows.append(narration_row(scene, video, np.random.default_rng([scene.seed, 8]),
                                                        phrasing="heldout"))
        scene_rows.append({"video": video, "scene": scene.to_dict()})

    requests, image_requests = _request_rows(seeds, "train")
    heldout_files: tuple[tuple[str, list[dict]], ...] = ()
    if heldout:
        heldout_requests, heldout_images = _request_rows(seeds, "heldout")
        heldout_files = (("qa_heldout.jsonl", heldout_qa_rows), ("dialogues_heldout.jsonl", heldout_dialogue_rows),
                         ("generation_requests_heldout.jsonl", heldout_requests),
                         ("image_requests_heldout.jsonl", heldout_images),
                         ("narration_qa_heldout.jsonl", heldout_narration_rows))
    for name, rows in (
        ("captions.jsonl", caption_rows),
        ("qa.jsonl", qa_rows),
        ("qa_conversations.jsonl", qa_conversation_rows),
        ("count_qa.jsonl", _balanced_counts(several, once, np.random.default_rng([seeds[0] if seeds else 0, 5]))),
        ("dialogues.jsonl", dialogue_rows),
        ("scenes.jsonl", scene_rows),
        ("generation_requests.jsonl", requests),
        ("image_requests.jsonl", image_requests),
        ("narration_qa.jsonl", narration_rows),
        ("edit_requests.jsonl", _edit_rows(scenes, videos)),
        ("sound_qa.jsonl", sound_rows),
        *heldout_files,
    ):
        _write_text_atomic(root / name, jsonl_text(rows))
    return root
