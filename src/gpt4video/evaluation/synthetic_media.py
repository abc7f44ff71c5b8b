"""The picture and speech tasks of the synthetic-split evaluation (:func:`~.synthetic.evaluate_split`).

- **Picture requests** (``image_requests.jsonl``, out-of-template ``image_requests_heldout.jsonl``): each
  row's request is a positive; the first question of every dialogue about clips (``dialogues.jsonl``, or
  its held-out version) is a negative. Reported: whether the reply writes an ``<image_prompt>`` exactly
  when asked (precision, recall), whether a request got a video prompt instead, whether the prompt asks for
  exactly the requested objects (colour and shape, read with ``parse_prompt``), and whether the picture
  the offline synthetic backend draws from it shows them, judged from its pixels alone.
- **Narrated clips** (``narration_qa.jsonl`` / ``narration_qa_heldout.jsonl``): questions asked with a clip
  whose speech is given as the subtitles line (:mod:`gpt4video.audio.subtitles`). By kind: *speech* (what
  is said; right when the reply contains every spoken word in order), *silent* (no subtitles; right when
  the reply says nothing is said) and *picture* (an ordinary question beside the subtitles; exact match).
- **Beeps** (``sound_qa.jsonl``; in-template only, no held-out file is written): questions asked with a clip
  whose beep is given as the sounds line (:mod:`gpt4video.data.synthetic.sounds`). The kind comes from the
  row (its ``sound`` and its reply), never from the question's wording: *when* (when does the beep start; right
  when the normalised reply equals the data's, so names the right frame), *no_beep* (the same question about a
  clip without a beep or a sounds line; right when the reply says there is no beep), *whether* (is there a
  beep; yes or no, :func:`answers_match`) and *picture* (an ordinary question beside the sounds line; exact
  match).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt4video.data.phrasing import normalize
from gpt4video.data.synthetic.grading import answers_match
from gpt4video.data.synthetic.narration import NO_SPEECH_REPLY
from gpt4video.data.synthetic.prompts import parse_prompt
from gpt4video.data.synthetic.sounds import NO_BEEP_REPLY, beep_reply
from gpt4video.errors import InputError
from gpt4video.jsonl import read_jsonl

__all__ = ["first_image_prompt", "format_media_markdown", "image_items", "image_scores", "measure_table",
           "narration_items", "narration_scores", "sound_items", "sound_scores"]

_IMAGE_PROMPT = re.compile(r"<image_prompt>(.*?)</image_prompt>", re.DOTALL)


def first_image_prompt(text: str) -> str | None:
    """The first non-empty ``<image_prompt>`` of a reply, or None."""
    found = next((m.group(1).strip() for m in _IMAGE_PROMPT.finditer(text or "") if m.group(1).strip()), None)
    return found


def _first_user_turn(row: dict[str, Any], where: str) -> dict[str, Any]:
    turns = row.get("turns") or []
    if not turns or turns[0].get("role") != "user" or len(turns) < 2:
        raise InputError(f"{where}: expected a user turn and its reply")
    return turns[0]


def image_items(split: Path, limit: int | None, name: str, make_item: Callable[..., Any],
                spread: Callable[[list, int | None], list], path_of: Callable[[Path, Any, str], str]) -> list[Any]:
    """Picture requests of ``name`` (positives) and the first questions of the matching dialogues file
    (negatives), half of ``limit`` each where there are enough."""
    file = split / name
    positives = []
    for i, row in enumerate(read_jsonl(file, what="picture request row")):
        where = f"{file} row {i + 1}"
        turn = _first_user_turn(row, where)
        prompt = first_image_prompt(row["turns"][1].get("text", ""))
        if prompt is None:
            raise InputError(f"{where}: the reply has no <image_prompt>")
        positives.append(make_item("images", turn["text"], [], True, {"want": parse_prompt(prompt)}))
    negatives = []
    dialogues = split / name.replace("image_requests", "dialogues")
    if dialogues.is_file():
        for i, row in enumerate(read_jsonl(dialogues, what="dialogue row")):
            videos = [path_of(split, v, f"{dialogues} row {i + 1}") for v in row.get("videos") or []]
            turn = _first_user_turn(row, f"{dialogues} row {i + 1}")
            if videos and turn.get("videos"):  # a question about clips, not a request
                negatives.append(make_item("images", turn["text"], [videos[j] for j in turn["videos"]], False, {}))
    if limit is not None:
        half = limit // 2
        n_pos = min(len(positives), max(half, limit - len(negatives)))
        positives, negatives = spread(positives, n_pos), spread(negatives, limit - n_pos)
    return positives + negatives


def _render_still(prompt: str, seed: int, size: int) -> np.ndarray:
    """The picture the offline synthetic image backend draws for ``prompt``, ``(H, W, 3)`` uint8."""
    from gpt4video.generators import build_image_generator

    return np.asarray(build_image_generator("synthetic")(prompt, height=size, width=size, seed=seed))


def image_scores(items: Sequence[Any], *, size: int = 128) -> dict[str, Any]:
    """The picture-request results of answered items (see the module docstring)."""
    from gpt4video.evaluation.pixels import check_generation

    from .synthetic import detection_scores, has_video_prompt

    scores = detection_scores([bool(i.gold) for i in items], [first_image_prompt(i.prediction) is not None
                                                              for i in items])
    requests = [i for i in items if i.gold]
    scores["video_instead"] = sum(has_video_prompt(i.prediction) for i in requests)
    asks = right = 0
    for k, item in enumerate(requests):
        prompt = first_image_prompt(item.prediction)
        want = item.meta.get("want")
        frames = None
        if prompt is not None:
            try:
                frames = _render_still(prompt, k, size)
            except InputError as e:  # a prompt outside the world, or objects that do not fit
                item.meta["check"] = {"prompt_written": True, "error": f"{type(e).__name__}: {e}"}
                continue
        check = check_generation(prompt, want, frames=frames, render=False)
        item.meta["check"] = check
        asks += check["prompt_asks_for_request"]
        right += check["content_right"]
    scores["prompt_asks_for_request"], scores["content_right"] = asks, right
    n = len(requests)
    for key in ("prompt_asks_for_request", "content_right", "video_instead"):
        scores[f"{key}_rate"] = scores[key] / n if n else None
    scores["no_image"] = scores["tn"]
    scores["no_image_rate"] = scores["tn"] / scores["negatives"] if scores["negatives"] else None
    return scores


def _question_rows(file: Path, what: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], str]]:
    """Each row of a one-question file (narration, sounds): where it is, the row, its user turn and the reply."""
    for i, row in enumerate(read_jsonl(file, what=what)):
        where = f"{file} row {i + 1}"
        yield where, row, _first_user_turn(row, where), row["turns"][1].get("text", "")


def narration_items(split: Path, limit: int | None, name: str, make_item: Callable[..., Any],
                    spread: Callable[[list, int | None], list], path_of: Callable[[Path, Any, str], str]) -> list[Any]:
    """The questions of ``name``, each with its clip; ``meta["kind"]`` is speech, silent or picture."""
    items = []
    for where, row, turn, reply in _question_rows(split / name, "narration row"):
        narration = row.get("narration")
        if narration is None:
            kind, gold = "silent", reply
        elif narration.get("text") and f'"{narration["text"]}"' in reply:
            kind, gold = "speech", narration["text"]
        else:
            kind, gold = "picture", reply
        items.append(make_item("narration", turn["text"], [path_of(split, row.get("video"), where)], gold,
                               {"kind": kind}))
    return spread(items, limit)


def _says_all_words(prediction: str, words: str) -> bool:
    return f" {normalize(words)} " in f" {normalize(prediction)} "


def _scores_by_kind(items: Sequence[Any], is_right: Callable[[Any], bool],
                    order: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy per ``meta["kind"]`` (in ``order``, else alphabetical) and overall, ``is_right`` judging an item."""
    by_kind: dict[str, dict[str, Any]] = {}
    for item in items:
        cell = by_kind.setdefault(item.meta["kind"], {"n": 0, "right": 0})
        cell["n"] += 1
        cell["right"] += int(is_right(item))
    for cell in by_kind.values():
        cell["accuracy"] = cell["right"] / cell["n"]
    kinds = sorted(by_kind, key=list(order).index) if order is not None else sorted(by_kind)
    n, right = sum(c["n"] for c in by_kind.values()), sum(c["right"] for c in by_kind.values())
    return {"by_kind": {k: by_kind[k] for k in kinds}, "n": n, "right": right, "accuracy": right / n if n else None}


def narration_scores(items: Sequence[Any]) -> dict[str, Any]:
    """Accuracy per kind of narrated-clip question and overall (see the module docstring)."""
    def is_right(item: Any) -> bool:
        if item.meta["kind"] == "speech":
            return _says_all_words(item.prediction, item.gold)
        if item.meta["kind"] == "silent":
            return normalize(item.prediction) == normalize(NO_SPEECH_REPLY)
        return answers_match(item.prediction, str(item.gold))

    return _scores_by_kind(items, is_right)


#: The kinds of beep question, in report order, each with its label in the report.
SOUND_KINDS = (("when", "when does the beep start? (names the right frame)"),
               ("no_beep", "when, on a clip without a beep: says there is none"),
               ("whether", "is there a beep? (yes or no)"),
               ("picture", "an ordinary question beside the sounds line (exact)"))
#: beep_reply(N) for any frame N.
_BEEP_REPLY = re.compile(re.escape(beep_reply(0)).replace("0", r"\d+"))


def _sound_kind(sound: Any, reply: str, where: str) -> str:
    """The kind of a ``sound_qa.jsonl`` row from its ``sound`` (the beep, or None) and its reply; InputError
    when the two disagree (a beep's start, or "Yes.", for a row without a beep, or the other way round)."""
    if _BEEP_REPLY.fullmatch(reply):
        kind, beeps = "when", True
    elif reply == NO_BEEP_REPLY:
        kind, beeps = "no_beep", False
    elif reply in ("Yes.", "No."):
        kind, beeps = "whether", reply == "Yes."
    else:
        return "picture"
    if beeps != (sound is not None):
        raise InputError(f"{where}: the reply {reply!r} does not agree with the row's sound ({sound!r})")
    return kind


def sound_items(split: Path, limit: int | None, name: str, make_item: Callable[..., Any],
                spread: Callable[[list, int | None], list], path_of: Callable[[Path, Any, str], str]) -> list[Any]:
    """The questions of ``name``, each with its clip; ``meta["kind"]`` is when, no_beep, whether or picture
    (from the row's ``sound`` and reply), and the gold answer is the data's reply."""
    items = []
    for where, row, turn, reply in _question_rows(split / name, "sound row"):
        kind = _sound_kind(row.get("sound"), reply, where)
        items.append(make_item("sounds", turn["text"], [path_of(split, row.get("video"), where)], reply,
                               {"kind": kind}))
    return spread(items, limit)


def sound_scores(items: Sequence[Any]) -> dict[str, Any]:
    """Accuracy per kind of beep question and overall (see the module docstring)."""
    def is_right(item: Any) -> bool:
        if item.meta["kind"] in ("when", "no_beep"):
            return normalize(item.prediction) == normalize(str(item.gold))
        return answers_match(item.prediction, str(item.gold))

    return _scores_by_kind(items, is_right, [k for k, _ in SOUND_KINDS])


def measure_table(inside: dict[str, Any], outside: dict[str, Any], rows: Sequence[tuple[str, str, str, str]],
                  pct: Callable[[Any], str]) -> list[str]:
    """A Markdown table of request measures, in-template beside out-of-template: each row is (label, count
    key, rate key, key of the count it is out of); a skipped task shows "—"."""
    def cell(g: dict[str, Any], count: str, rate: str, of: str) -> str:
        return "—" if "skipped" in g or not g else f"{pct(g.get(rate))} ({g.get(count, 0)}/{g.get(of, 0)})"

    return ["| measure | in-template | out-of-template |", "| --- | ---: | ---: |",
            *(f"| {label} | {cell(inside, *keys)} | {cell(outside, *keys)} |" for label, *keys in rows)]


def format_media_markdown(results: dict[str, Any], pct: Callable[[Any], str]) -> list[str]:
    """The report's sections for pictures and narrated clips (lines), in-template beside out-of-template, and
    for beeps (in-template only)."""
    lines: list[str] = []
    img, img_out = results.get("images", {}), results.get("images_heldout", {})
    if not ("skipped" in img and "skipped" in img_out) and (img or img_out):
        lines += ["## Picture requests (does the reply contain an `<image_prompt>`, and the right one?)", ""]
        lines += measure_table(img, img_out, (
            ("image prompt written (of requests)", "tp", "recall", "positives"),
            ("a video prompt instead (of requests)", "video_instead", "video_instead_rate", "positives"),
            ("prompt asks for the requested objects (`parse_prompt`)", "prompt_asks_for_request",
             "prompt_asks_for_request_rate", "positives"),
            ("content right from the pixels (of requests)", "content_right", "content_right_rate", "positives"),
            ("no image for ordinary questions", "no_image", "no_image_rate", "negatives"),
        ), pct)
        lines += ["", "*Content right*: the picture the offline synthetic backend draws from the reply's first image "
                  "prompt shows exactly the requested objects (colour and shape), read from its pixels.", ""]
    nar, nar_out = results.get("narration", {}), results.get("narration_heldout", {})
    if not ("skipped" in nar and "skipped" in nar_out) and (nar or nar_out):
        lines += ["## Narrated clips (speech given as the subtitles line)", "",
                  "| question | n in / out | in-template | out-of-template |", "| --- | ---: | ---: | ---: |"]
        for kind, label in (("speech", "what is said (every spoken word, in order)"),
                            ("silent", "no subtitles: says nothing is said"),
                            ("picture", "an ordinary question beside the subtitles (exact)")):
            a, b = nar.get("by_kind", {}).get(kind, {}), nar_out.get("by_kind", {}).get(kind, {})
            lines.append(f"| {label} | {a.get('n', 0)} / {b.get('n', 0)} | {pct(a.get('accuracy'))} | "
                         f"{pct(b.get('accuracy'))} |")
        lines += [f"| **overall** | {nar.get('n', 0)} / {nar_out.get('n', 0)} | {pct(nar.get('accuracy'))} | "
                  f"{pct(nar_out.get('accuracy'))} |", ""]
    snd = results.get("sounds", {})
    if snd and "skipped" not in snd:
        lines += ["## Beeps (the sounds line)", "", "| question | n | right | accuracy |",
                  "| --- | ---: | ---: | ---: |"]
        for kind, label in SOUND_KINDS:
            c = snd.get("by_kind", {}).get(kind, {})
            lines.append(f"| {label} | {c.get('n', 0)} | {c.get('right', 0)} | {pct(c.get('accuracy'))} |")
        lines += [f"| **overall** | {snd.get('n', 0)} | {snd.get('right', 0)} | {pct(snd.get('accuracy'))} |", "",
                  "In-template only (`sound_qa.jsonl`; no held-out file is written). The beep is given as the "
                  "sounds line (\"Sounds: a beep (frame 3).\"), as training gives it, never as sound.", ""]
    return lines
