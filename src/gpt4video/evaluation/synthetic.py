"""Evaluation on a split of the synthetic world (``gpt4video data synthetic``): QA, captioning, and
whether the model writes a video prompt exactly when asked for a new video, and the right one.

Three tasks, each read from the split directory (video paths in its files are relative to it), and the
picture-request, narrated-clip and beep tasks of :mod:`.synthetic_media`. All but captioning and beeps
(``sound_qa.jsonl``, which has no held-out file) are evaluated twice, side by side (``phrasing``):

- **in-template**: ``qa.jsonl`` and ``dialogues.jsonl``, worded by the training template families
  (:mod:`gpt4video.data.phrasing`; the ones the training splits use);
- **out-of-template**: ``qa_heldout.jsonl`` and ``dialogues_heldout.jsonl``, the same questions and
  dialogues (same clips, answers and replies) worded only by held-out families, which no training
  split uses. ``gpt4video data synthetic`` writes them for every split but "train".

- **QA** (``qa.jsonl``): every question as a one-turn conversation with its clip. Two accuracies, by
  question type and overall (over questions):

  * ``exact``: :func:`~gpt4video.data.synthetic.answers_match` of the *whole* answer with the gold
    one-word answer (lower case, no punctuation or articles, number words as digits). A sentence
    such as "The circle is red." does not count.
  * ``contains_gold``: lenient; the normalised gold answer appears as a whole word in the
    normalised answer ("The circle is red." counts). An answer that lists every option also counts,
    so read it next to ``exact``.

  Both results also come by template family (``by_family``; "classic" holds the templates the
  world always used, so its figure compares with evaluations made before the families).

- **Captioning** (``captions.jsonl``): the answer to "Describe this video." against all the clip's
  paraphrases, with pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr (SPICE is not used).
  Sentences are tokenised with pycocoevalcap's PTBTokenizer (Java) when it works, else with a simple
  lower-case, letters-and-digits tokenizer; the results say which. METEOR needs Java: without it,
  it is reported as ``"unavailable"`` with the reason. CIDEr's IDF weights come from the references of
  the evaluated clips, so it is only comparable between runs on the same clips.

- **Generation requests** (``dialogues.jsonl``): a user turn whose reply in the data contains
  ``<video_prompt>…</video_prompt>`` is a positive (a request for a new video); the first user turn
  of any other dialogue is a negative (a question about videos). A request is asked in its dialogue:
  the earlier turns of the data (user turns and the data's own replies) come first, with the videos
  shown so far, since a follow-up such as "Now make it green." means nothing alone. The answer counts
  as "wrote a prompt" if it contains a non-empty ``<video_prompt>…</video_prompt>``. Reported:
  precision, recall, F1 and the confusion counts; and, over the requests, whether the prompt asks for
  exactly the requested objects (read with ``parse_prompt``) and whether the video rendered from it by
  the offline synthetic backend shows them, judged from its pixels alone
  (:func:`~gpt4video.evaluation.pixels.check_generation`: each object's colour, shape and motion; the
  request is the data's own reply's prompt); over the other questions, how many made no video.

The model is reached through an *answer function* ``answer_fn(question, videos, history) -> str``
(videos: absolute paths; history: the earlier turns, ``{"role", "text", "videos"}`` dicts whose video
indices point into ``videos``, empty for a question asked alone).
:func:`assistant_answer_fn` makes one from a model or an Assistant; tests pass a stub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import io
import json
import math
import os
import re
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt4video.config import atomic_write_text
from gpt4video.data.synthetic.grading import answers_match, normalize_answer
from gpt4video.data.synthetic.prompts import parse_prompt
from gpt4video.data.synthetic.qa import QA_TYPES
from gpt4video.errors import InputError
from gpt4video.jsonl import read_jsonl

from .synthetic_media import (
    format_media_markdown,
    image_items,
    image_scores,
    measure_table,
    narration_items,
    narration_scores,
    sound_items,
    sound_scores,
)

__all__ = [
    "CAPTION_PROMPT",
    "CAPTION_METRICS",
    "AnswerFn",
    "assistant_answer_fn",
    "caption_scores",
    "check_split",
    "contains_answer",
    "detection_scores",
    "evaluate_split",
    "first_video_prompt",
    "format_markdown",
    "has_video_prompt",
    "qa_scores",
    "write_report",
]

#: answer_fn(question, videos, history) -> the model's reply. ``history``: the dialogue's earlier turns
#: ({"role", "text", "videos"}, videos as indices into ``videos``), empty for a question asked alone.
AnswerFn = Callable[[str, Sequence[str], Sequence[dict[str, Any]]], str]

#: The instruction the captioning task asks with.
CAPTION_PROMPT = "Describe this video."
#: The captioning metrics, in report order.
CAPTION_METRICS: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")

_VIDEO_PROMPT = re.compile(r"<video_prompt>(.*?)</video_prompt>", re.DOTALL)
_MAX_EXAMPLES = 3
_MAX_ERRORS = 10


# ============================================================================================
# The answer function


def assistant_answer_fn(model_or_assistant: Any, params: Any = None, *, cache_size: int = 8) -> AnswerFn:
    """An answer function over a :class:`~gpt4video.pipeline.Assistant` (or a GPT4Video, wrapped in one).

    Each call is a fresh one-turn conversation (the Assistant is reset). The last ``cache_size``
    decoded clips are kept, since consecutive questions are usually about the same clip.
    """
    from gpt4video.modeling import is_model
    from gpt4video.pipeline import Assistant

    if is_model(model_or_assistant):
        assistant = Assistant(model_or_assistant)
    elif isinstance(model_or_assistant, Assistant):
        assistant = model_or_assistant
    else:
        raise TypeError(f"expected a GPT4Video or an Assistant, got {type(model_or_assistant).__name__}")
    clips: OrderedDict[str, Any] = OrderedDict()

    def clip(path: str) -> Any:
        if path in clips:
            clips.move_to_end(path)
        else:
            clips[path] = assistant.load(path)
            while len(clips) > cache_size:
                clips.popitem(last=False)
        return clips[path]

    def answer(question: str, videos: Sequence[str], history: Sequence[dict[str, Any]] = ()) -> str:
        assistant.reset()
        # The history's turns show videos by index into ``videos``; the ones no earlier turn showed join
        # the question.
        shown = [i for t in history for i in t.get("videos") or []]
        assistant.restore([(t["role"], t["text"], [clip(videos[i]) for i in t.get("videos") or []])
                           for t in history])
        new = [clip(p) for i, p in enumerate(videos) if i not in shown]
        return assistant.ask(question, new, params).consume().raw_text

    return answer


def _answer_fn_for(model_or_assistant: Any, params: Any) -> tuple[AnswerFn, dict[str, Any]]:
    """The answer function to use and what is known about the model (for the report)."""
    model = getattr(model_or_assistant, "model", model_or_assistant)
    info = {k: getattr(model, k) for k in ("source", "trained") if hasattr(model, k)}
    try:
        return assistant_answer_fn(model_or_assistant, params), info
    except TypeError:
        if callable(model_or_assistant):  # already an answer function
            return model_or_assistant, info
        raise


# ============================================================================================
# Metrics on fixed predictions


def contains_answer(prediction: str, gold: str) -> bool:
    """Whether the normalised gold answer occurs as whole words in the normalised prediction."""
    pred, want = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not want:
        return not pred
    return any(pred[i : i + len(want)] == want for i in range(len(pred) - len(want) + 1))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def qa_scores(items: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """QA accuracies from ``(type, gold, prediction)`` triples.

    Returns ``{"n", "overall": {"n", "exact", "contains_gold", "accuracy_exact",
    "accuracy_contains_gold"}, "by_type": {type: same}, "macro_accuracy_exact"}``. ``exact`` is
    :func:`answers_match` on the whole prediction, ``contains_gold`` is :func:`contains_answer`.
    The overall accuracy is over questions; the macro one is the mean over the types present.
    """
    def cell() -> dict[str, Any]:
        return {"n": 0, "exact": 0, "contains_gold": 0}

    order = list(QA_TYPES) + sorted({t for t, _, _ in items} - set(QA_TYPES))
    by_type = {t: cell() for t in order}
    overall = cell()
    for qtype, gold, pred in items:
        exact, contains = answers_match(pred, gold), contains_answer(pred, gold)
        for c in (by_type[qtype], overall):
            c["n"] += 1
            c["exact"] += int(exact)
            c["contains_gold"] += int(contains)
    by_type = {t: c for t, c in by_type.items() if c["n"]}
    for c in [overall, *by_type.values()]:
        c["accuracy_exact"] = _ratio(c["exact"], c["n"])
        c["accuracy_contains_gold"] = _ratio(c["contains_gold"], c["n"])
    per_type = [c["accuracy_exact"] for c in by_type.values()]
    return {
        "n": overall["n"], "overall": overall, "by_type": by_type,
        "macro_accuracy_exact": sum(per_type) / len(per_type) if per_type else None,
    }


def has_video_prompt(text: str) -> bool:
    """Whether a reply holds a non-empty ``<video_prompt>…</video_prompt>``."""
    return any(m.strip() for m in _VIDEO_PROMPT.findall(text or ""))


def first_video_prompt(text: str) -> str | None:
    """The first non-empty ``<video_prompt>…</video_prompt>`` of a reply, stripped; ``None`` if none."""
    return next((m.strip() for m in _VIDEO_PROMPT.findall(text or "") if m.strip()), None)


def detection_scores(labels: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    """Precision, recall and F1 of a yes/no decision (positive = "a prompt is wanted / was written").

    A ratio whose denominator is 0 is ``None`` (undefined), never a made-up 0 or 1. F1 is
    2·TP / (2·TP + FP + FN).
    """
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions")
    tp = sum(1 for y, p in zip(labels, predicted) if y and p)
    fp = sum(1 for y, p in zip(labels, predicted) if not y and p)
    fn = sum(1 for y, p in zip(labels, predicted) if y and not p)
    tn = len(labels) - tp - fp - fn
    return {
        "n": len(labels), "positives": tp + fn, "negatives": fp + tn,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn), "accuracy": _ratio(tp + tn, len(labels)),
    }


def _simple_tokens(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _tokenize(sentences: dict[str, list[str]], tokenizer: str) -> tuple[dict[str, list[str]], str, str | None]:
    """Tokenise every sentence; returns (tokenised, tokenizer used, why PTB was not used)."""
    if tokenizer not in ("auto", "ptb", "simple"):
        raise InputError(f"unknown tokenizer {tokenizer!r}; choose auto, ptb or simple")
    simple = {k: [_simple_tokens(s) for s in v] for k, v in sentences.items()}
    if tokenizer == "simple":
        return simple, "simple", "the simple tokenizer was asked for"
    if shutil.which("java") is None:
        reason = "java not found on PATH"
    else:
        try:
            from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

            # Blank sentences are left out (and come back empty) so the tokenizer's lines stay aligned.
            wanted = {f"{k}\t{i}": [{"caption": s}] for k, v in sentences.items() for i, s in enumerate(v) if s.strip()}
            done = PTBTokenizer().tokenize(wanted) if wanted else {}
            if set(done) != set(wanted) or any(len(v) != 1 for v in done.values()):
                raise RuntimeError("the tokenizer's output does not line up with its input")
            return (
                {k: [done[f"{k}\t{i}"][0] if s.strip() else "" for i, s in enumerate(v)] for k, v in sentences.items()},
                "ptb", None,
            )
        except Exception as e:  # noqa: BLE001 - any failure of the Java tokenizer: fall back, and say why
            reason = f"PTBTokenizer failed: {type(e).__name__}: {e}"
    if tokenizer == "ptb":
        raise InputError(f"cannot use the PTB tokenizer: {reason}")
    return simple, "simple", reason


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """pycocoevalcap's METEOR (runs its Java scorer); raises if it cannot run."""
    if shutil.which("java") is None:
        raise RuntimeError("java not found on PATH")
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
        return float(score)
    finally:
        # Stop the Java process now; release the lock a failed call leaves held, or __del__ would hang.
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
        if scorer.lock.locked():
            scorer.lock.release()


def caption_scores(
    references: Sequence[Sequence[str]], predictions: Sequence[str], *, tokenizer: str = "auto", meteor: bool = True,
) -> dict[str, Any]:
    """Captioning metrics of ``predictions[i]`` against the paraphrases ``references[i]`` (pycocoevalcap).

    ``tokenizer``: "auto" (PTBTokenizer if Java works, else simple), "ptb" or "simple". Returns
    ``{"n", "tokenizer", "tokenizer_note", "metrics": {name: float | "unavailable"}, "unavailable":
    {name: reason}}``; scores are pycocoevalcap's (0-1, CIDEr 0-10).
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference lists but {len(predictions)} predictions")
    result: dict[str, Any] = {"n": len(predictions), "tokenizer": None, "tokenizer_note": None,
                              "metrics": {}, "unavailable": {}}
    if not predictions:
        result["unavailable"] = {m: "no captions were evaluated" for m in CAPTION_METRICS}
        result["metrics"] = {m: "unavailable" for m in CAPTION_METRICS}
        return result
    for i, refs in enumerate(references):
        if not refs:
            raise ValueError(f"caption {i} has no references")
    keys = [str(i) for i in range(len(predictions))]
    sentences = {f"r{k}": list(refs) for k, refs in zip(keys, references)}
    sentences.update({f"p{k}": [pred or ""] for k, pred in zip(keys, predictions)})
    tokens, used, note = _tokenize(sentences, tokenizer)
    result["tokenizer"], result["tokenizer_note"] = used, note
    gts = {k: tokens[f"r{k}"] for k in keys}
    res = {k: tokens[f"p{k}"] for k in keys}

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    metrics: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # the BLEU scorer prints its statistics
        bleu, _ = Bleu(4).compute_score(gts, res)
    for n, value in enumerate(bleu, start=1):
        metrics[f"BLEU-{n}"] = float(value)
    if meteor:
        try:
            metrics["METEOR"] = _meteor(gts, res)
        except Exception as e:  # noqa: BLE001 - reported, never replaced by a number
            metrics["METEOR"] = "unavailable"
            result["unavailable"]["METEOR"] = str(e) or type(e).__name__
    else:
        metrics["METEOR"] = "unavailable"
        result["unavailable"]["METEOR"] = "METEOR was switched off"
    metrics["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    metrics["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    result["metrics"] = {m: metrics[m] for m in CAPTION_METRICS}
    return result


# ============================================================================================
# Reading the split


@dataclass
class _Item:
    task: str
    question: str
    videos: list[str]
    gold: Any
    meta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    prediction: str = ""
    error: str | None = None


def _spread(items: list[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` items, evenly spread over the list (all of them if ``limit`` is None)."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        return []
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _path(split: Path, value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: expected a video path, got {value!r}")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else split / path)


def _qa_items(split: Path, limit: int | None, name: str = "qa.jsonl") -> list[_Item]:
    file = split / name
    items = []
    for i, row in enumerate(read_jsonl(file, what="QA row")):
        try:
            items.append(_Item("qa", row["question"], [_path(split, row["video"], f"{file} row {i + 1}")],
                               row["answer"], {"type": row.get("type") or "unknown", "family": row.get("family")}))
        except KeyError as e:
            raise InputError(f"{file} row {i + 1}: missing {e.args[0]!r}") from None
    return _spread(items, limit)


def _caption_items(split: Path, limit: int | None, name: str = "captions.jsonl") -> list[_Item]:
    file = split / name
    items = []
    for i, row in enumerate(read_jsonl(file, what="caption row")):
        refs = row.get("captions") or ([row["caption"]] if row.get("caption") else [])
        if not refs or "video" not in row:
            raise InputError(f"{file} row {i + 1}: needs \"video\" and \"captions\" (or \"caption\")")
        items.append(_Item("captioning", CAPTION_PROMPT, [_path(split, row["video"], f"{file} row {i + 1}")], list(refs)))
    return _spread(items, limit)


def _generation_items(split: Path, limit: int | None, name: str = "dialogues.jsonl") -> list[_Item]:
    """Positives (requests for a new video; ``meta["want"]``: what the data's reply asked the generator
    for) and negatives (first questions about videos), balanced when limited: half of ``limit`` from each
    kind where there are enough."""
    file = split / name
    positives, negatives = [], []
    for i, row in enumerate(read_jsonl(file, what="dialogue row")):
        where = f"{file} row {i + 1}"
        paths = [_path(split, v, where) for v in row.get("videos") or []]
        turns = row.get("turns") or []
        shown: list[int] = []
        for t, turn in enumerate(turns[:-1]):
            if turn.get("role") != "user":
                continue
            shown += [j for j in turn.get("videos") or [] if j not in shown]
            reply = turns[t + 1]
            if reply.get("role") != "assistant":
                continue
            videos = [paths[j] for j in shown]
            first = t == 0
            if has_video_prompt(reply.get("text", "")):
                # Earlier turns as in the data, their video indices renumbered into ``videos``.
                history = [{"role": h.get("role"), "text": h.get("text", ""),
                            "videos": [shown.index(j) for j in h.get("videos") or [] if j in shown]}
                           for h in turns[:t]]
                want = parse_prompt(first_video_prompt(reply["text"]) or "")
                positives.append(_Item("generation", turn["text"], videos, True, {"first_turn": first, "want": want},
                                       history))
            elif first:
                negatives.append(_Item("generation", turn["text"], videos, False, {"first_turn": True}))
    if limit is not None and limit < len(positives) + len(negatives):
        half = limit // 2
        n_pos = min(len(positives), max(half, limit - len(negatives)))
        positives, negatives = _spread(positives, n_pos), _spread(negatives, limit - n_pos)
    return positives + negatives


# ============================================================================================
# The evaluation


#: Each task's file. The "_heldout" tasks are the out-of-template versions of the others ("captioning" and
#: "sounds" have none).
_TASK_FILES = {"qa": "qa.jsonl", "captioning": "captions.jsonl", "generation": "dialogues.jsonl",
               "images": "image_requests.jsonl", "narration": "narration_qa.jsonl", "sounds": "sound_qa.jsonl",
               "qa_heldout": "qa_heldout.jsonl", "generation_heldout": "dialogues_heldout.jsonl",
               "images_heldout": "image_requests_heldout.jsonl", "narration_heldout": "narration_qa_heldout.jsonl"}
#: The tasks each ``phrasing`` of evaluate_split runs.
PHRASING_TASKS: dict[str, tuple[str, ...]] = {
    "both": tuple(_TASK_FILES),
    "train": ("qa", "captioning", "generation", "images", "narration", "sounds"),
    "heldout": ("qa_heldout", "generation_heldout", "images_heldout", "narration_heldout"),
}


def check_split(split_dir: str | os.PathLike[str]) -> Path:
    """The absolute split directory; InputError unless it exists and holds at least one task file."""
    split = Path(split_dir).expanduser()
    if not split.is_dir():
        raise InputError(f"{split}: split directory not found (make one with `gpt4video data synthetic`)")
    names = ", ".join(_TASK_FILES.values())
    if not any((split / f).is_file() for f in _TASK_FILES.values()):
        raise InputError(f"{split}: none of {names} is there; is this a split directory?")
    return Path(os.path.abspath(split))


def _generation_scores(items: Sequence[_Item], *, render_size: int = 128, num_frames: int = 16) -> dict[str, Any]:
    """The generation-request results of answered items: :func:`detection_scores` (positive = a request for
    a new video), recall on first-turn and follow-up requests, and over the requests ``prompt_asks_for_request``
    and ``content_right`` (:func:`~gpt4video.evaluation.pixels.check_generation`, each request's prompt rendered
    by the synthetic backend with the request's index as seed), over the other questions ``no_video``."""
    from gpt4video.evaluation.pixels import check_generation

    scores = detection_scores([bool(i.gold) for i in items], [has_video_prompt(i.prediction) for i in items])
    first = [i for i in items if i.gold and i.meta["first_turn"]]
    follow = [i for i in items if i.gold and not i.meta["first_turn"]]
    scores["recall_first_turn_requests"] = _ratio(sum(has_video_prompt(i.prediction) for i in first), len(first))
    scores["recall_follow_up_requests"] = _ratio(sum(has_video_prompt(i.prediction) for i in follow), len(follow))
    requests = [i for i in items if i.gold]
    checks = [check_generation(first_video_prompt(i.prediction), i.meta.get("want"), seed=k, size=render_size,
                               num_frames=num_frames) for k, i in enumerate(requests)]
    for item, check in zip(requests, checks):
        item.meta["check"] = check
    for key in ("prompt_asks_for_request", "content_right"):
        scores[key] = sum(c[key] for c in checks)
        scores[f"{key}_rate"] = _ratio(scores[key], len(requests))
    # Edits of a clip the user showed (the prompt copies the clip's objects and changes one) apart from the rest.
    edits = [c for i, c in zip(requests, checks) if i.videos and not i.meta["first_turn"]]
    scores["edits_of_a_shown_clip"] = len(edits)
    scores["edits_content_right"] = sum(c["content_right"] for c in edits)
    scores["edits_content_right_rate"] = _ratio(scores["edits_content_right"], len(edits))
    scores["no_video"] = scores["tn"]
    scores["no_video_rate"] = _ratio(scores["tn"], scores["negatives"])
    return scores


def evaluate_split(
    model_or_assistant: Any,
    split_dir: str | os.PathLike[str],
    *,
    max_qa: int | None = None,
    max_captions: int | None = None,
    max_generation: int | None = None,
    max_images: int | None = None,
    max_narration: int | None = None,
    max_sounds: int | None = None,
    params: Any = None,
    answer_fn: AnswerFn | None = None,
    tokenizer: str = "auto",
    meteor: bool = True,
    phrasing: str = "both",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a model on a synthetic split directory (see the module docstring for the tasks).

    ``model_or_assistant``: a GPT4Video, an Assistant, or an answer function
    ``(question, videos, history) -> str``; ``answer_fn`` overrides it (then ``model_or_assistant`` may be
    None). ``max_*``: at most that many items of each task, evenly spread over its file (0 skips the
    task); ``max_qa`` and ``max_generation`` count in-template and out-of-template separately, and since the
    held-out files follow their in-template ones row for row, both columns ask about the same clips.
    ``phrasing``: "both" (default), "train" (in-template QA and generation, and captioning and beeps) or "heldout"
    (out-of-template only). ``params``: GenerationParams for every answer. A task whose file is missing is
    skipped, and the results say so. A question whose video cannot be read counts as wrong and is listed
    under ``errors``.

    ``max_images``, ``max_narration`` and ``max_sounds`` limit the picture-request, narrated-clip and beep
    tasks (:mod:`.synthetic_media`) the same way. A split made before ``sound_qa.jsonl`` has its beep task
    skipped.

    Returns a JSON-ready dict: ``qa``, ``captioning``, ``generation``, ``images``, ``narration``, ``sounds``
    and the out-of-template versions ``qa_heldout``, ``generation_heldout``, ``images_heldout``,
    ``narration_heldout`` (each with its ``examples``), ``counts``, ``errors``,
    ``elapsed_seconds`` (total and per task), ``model``, ``settings`` and ``split_dir``.
    """
    from tqdm.auto import tqdm

    split = check_split(split_dir)
    # Fail before the answers, not after them.
    if phrasing not in PHRASING_TASKS:
        raise InputError(f"unknown phrasing {phrasing!r}; choose {', '.join(PHRASING_TASKS)}")
    wanted = PHRASING_TASKS[phrasing]
    if tokenizer not in ("auto", "ptb", "simple"):
        raise InputError(f"unknown tokenizer {tokenizer!r}; choose auto, ptb or simple")
    if "captioning" in wanted and max_captions != 0 and (split / _TASK_FILES["captioning"]).is_file():
        if importlib.util.find_spec("pycocoevalcap") is None:
            raise InputError("the captioning metrics need pycocoevalcap: pip install 'gpt4video[eval]' "
                             "(or skip captioning with max_captions=0)")
        if tokenizer == "ptb" and shutil.which("java") is None:
            raise InputError("cannot use the PTB tokenizer: java not found on PATH")
    info: dict[str, Any] = {}
    if answer_fn is None:
        if model_or_assistant is None:
            raise TypeError("evaluate_split needs a model, an Assistant or an answer_fn")
        answer_fn, info = _answer_fn_for(model_or_assistant, params)

    media = {"make_item": _Item, "spread": _spread, "path_of": _path}
    loaders = {"qa": (_qa_items, max_qa), "captioning": (_caption_items, max_captions),
               "generation": (_generation_items, max_generation), "qa_heldout": (_qa_items, max_qa),
               "generation_heldout": (_generation_items, max_generation),
               **{task: (functools.partial(image_items, **media), max_images) for task in ("images", "images_heldout")},
               **{task: (functools.partial(narration_items, **media), max_narration)
                  for task in ("narration", "narration_heldout")},
               "sounds": (functools.partial(sound_items, **media), max_sounds)}
    tasks: dict[str, list[_Item]] = {}
    skipped: dict[str, str] = {}
    for task, (load, limit) in loaders.items():
        if task not in wanted:
            skipped[task] = f"not asked for (phrasing {phrasing!r})"
        elif not (split / _TASK_FILES[task]).is_file():
            skipped[task] = f"{_TASK_FILES[task]} not found" + (
                " (a split made before the template families, or a training split: remake it with "
                "`gpt4video data synthetic`)" if task.endswith("_heldout") else
                " (a split made before the beeps: remake it with `gpt4video data synthetic`)" if task == "sounds"
                else "")
        elif limit is not None and limit <= 0:
            skipped[task] = "switched off (limit 0)"
        else:
            tasks[task] = load(split, limit, _TASK_FILES[task])

    start = time.perf_counter()
    elapsed: dict[str, float] = {}
    errors: list[dict[str, Any]] = []
    total = sum(len(v) for v in tasks.values())
    with tqdm(total=total, desc="eval", unit="answer", disable=not progress) as bar:
        for task, items in tasks.items():
            t0 = time.perf_counter()
            bar.set_postfix_str(task)
            for item in items:
                try:
                    item.prediction = answer_fn(item.question, item.videos, item.history or ()) or ""
                except InputError as e:  # an unreadable clip: scored as a wrong answer, and listed
                    item.error = str(e)
                    errors.append({"task": task, "question": item.question, "videos": item.videos, "error": str(e)})
                bar.update(1)
            elapsed[task] = time.perf_counter() - t0

    results: dict[str, Any] = {
        "split_dir": str(split),
        "model": info,
        "settings": {
            "max_qa": max_qa, "max_captions": max_captions, "max_generation": max_generation,
            "max_images": max_images, "max_narration": max_narration, "max_sounds": max_sounds, "phrasing": phrasing,
            "generation_params": dataclasses.asdict(params) if dataclasses.is_dataclass(params) else None,
        },
        **{task: {"skipped": skipped[task]} if task in skipped else {} for task in _TASK_FILES},
    }
    t_metrics = time.perf_counter()
    for task in ("qa", "qa_heldout"):
        if task in tasks:
            items = tasks[task]
            results[task] = qa_scores([(i.meta["type"], str(i.gold), i.prediction) for i in items])
            results[task]["by_family"] = _by_family(items)
            results[task]["examples"] = [_example(i) for i in items[:_MAX_EXAMPLES]]
    if "captioning" in tasks:
        items = tasks["captioning"]
        results["captioning"] = caption_scores([i.gold for i in items], [i.prediction for i in items],
                                               tokenizer=tokenizer, meteor=meteor)
        results["captioning"]["references_per_clip"] = (
            sum(len(i.gold) for i in items) / len(items) if items else None
        )
        results["captioning"]["examples"] = [_example(i) for i in items[:_MAX_EXAMPLES]]
    # Request tasks: examples of two requests and one other question, and every request with what became of
    # it (its pixel check), so the misses can be read.
    for task, score in (("generation", _generation_scores), ("generation_heldout", _generation_scores),
                        ("images", image_scores), ("images_heldout", image_scores)):
        if task in tasks:
            items = tasks[task]
            results[task] = score(items)
            pos, neg = [i for i in items if i.gold], [i for i in items if not i.gold]
            results[task]["examples"] = [_example(i) for i in pos[:2] + neg[:1]]
            results[task]["requests"] = [{**_example(i), "want": _want_text(i)} for i in pos]
    for task in ("narration", "narration_heldout"):
        if task in tasks:
            results[task] = narration_scores(tasks[task])
            results[task]["examples"] = [_example(i) for i in tasks[task][:_MAX_EXAMPLES]]
    if "sounds" in tasks:
        results["sounds"] = sound_scores(tasks["sounds"])
        results["sounds"]["examples"] = [_example(i) for i in tasks["sounds"][:_MAX_EXAMPLES]]
    elapsed["metrics"] = time.perf_counter() - t_metrics
    results["counts"] = {**{t: len(v) for t, v in tasks.items()}, "answers": total, "errors": len(errors)}
    results["errors"] = errors[:_MAX_ERRORS]
    results["elapsed_seconds"] = {"total": time.perf_counter() - start, **elapsed}
    return results


def _by_family(items: Sequence[_Item]) -> dict[str, dict[str, Any]]:
    """Exact-match accuracy per template family of the questions (rows without one: "unknown")."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        cell = out.setdefault(item.meta.get("family") or "unknown", {"n": 0, "exact": 0})
        cell["n"] += 1
        cell["exact"] += int(answers_match(item.prediction, str(item.gold)))
    for cell in out.values():
        cell["accuracy_exact"] = _ratio(cell["exact"], cell["n"])
    return dict(sorted(out.items()))


def _want_text(item: _Item) -> list[list[str | None]] | None:
    """The objects a request asks for, as [colour, shape, motion] (None: not said; the whole: unknown)."""
    want = item.meta.get("want")
    return None if want is None else [[o.color, o.shape, o.motion] for o in want.objects]


def _example(item: _Item) -> dict[str, Any]:
    gold = item.gold[:2] if item.task == "captioning" else item.gold
    out = {"question": item.question, "videos": item.videos, "gold": gold, "prediction": item.prediction}
    if "check" in item.meta:
        out["check"] = item.meta["check"]
    if item.error:
        out["error"] = item.error
    return out


# ============================================================================================
# Reports


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def format_markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown report (tables per task)."""
    lines = ["# Evaluation on a synthetic split", ""]
    model = results.get("model") or {}
    if model:
        lines.append(f"- model: `{model.get('source', '?')}` (trained weights: {model.get('trained', '?')})")
    lines.append(f"- split: `{results.get('split_dir', '?')}`")
    counts = results.get("counts", {})
    elapsed = results.get("elapsed_seconds", {})
    lines.append(f"- answers: {counts.get('answers', 0)}, errors: {counts.get('errors', 0)}, "
                 f"elapsed: {elapsed.get('total', 0.0):.1f} s")
    lines.append("")

    qa, qa_out = results.get("qa", {}), results.get("qa_heldout", {})
    lines += ["## Question answering", ""]
    if "skipped" in qa and "skipped" in qa_out:
        lines += [f"Skipped: {qa['skipped']}.", ""]
    elif "skipped" in qa_out:
        lines += ["| type | n | exact match | contains gold word |", "| --- | ---: | ---: | ---: |"]
        for qtype, c in qa.get("by_type", {}).items():
            lines.append(f"| {qtype} | {c['n']} | {_pct(c['accuracy_exact'])} | {_pct(c['accuracy_contains_gold'])} |")
        o = qa.get("overall", {})
        lines.append(f"| **overall** | {o.get('n', 0)} | {_pct(o.get('accuracy_exact'))} | "
                     f"{_pct(o.get('accuracy_contains_gold'))} |")
        lines += ["", f"Mean over types (exact): {_pct(qa.get('macro_accuracy_exact'))}. Out-of-template: "
                  f"{qa_out['skipped']}."]
    else:
        lines += ["| type | n in / out | in-template exact | out-of-template exact | in-template contains gold "
                  "| out-of-template contains gold |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for qtype in list(dict.fromkeys([*qa.get("by_type", {}), *qa_out.get("by_type", {})])):
            a, b = qa.get("by_type", {}).get(qtype, {}), qa_out.get("by_type", {}).get(qtype, {})
            lines.append(f"| {qtype} | {a.get('n', 0)} / {b.get('n', 0)} | {_pct(a.get('accuracy_exact'))} | "
                         f"{_pct(b.get('accuracy_exact'))} | {_pct(a.get('accuracy_contains_gold'))} | "
                         f"{_pct(b.get('accuracy_contains_gold'))} |")
        a, b = qa.get("overall", {}), qa_out.get("overall", {})
        lines.append(f"| **overall** | {a.get('n', 0)} / {b.get('n', 0)} | {_pct(a.get('accuracy_exact'))} | "
                     f"{_pct(b.get('accuracy_exact'))} | {_pct(a.get('accuracy_contains_gold'))} | "
                     f"{_pct(b.get('accuracy_contains_gold'))} |")
        lines += ["", f"Mean over types (exact): in-template {_pct(qa.get('macro_accuracy_exact'))}, out-of-template "
                  f"{_pct(qa_out.get('macro_accuracy_exact'))}. *In-template*: questions worded by the training "
                  "template families; *out-of-template*: the same questions worded by held-out families no training "
                  "split uses." + (f" In-template: {qa['skipped']}." if "skipped" in qa else "")]
    for where, part in (("In-template", qa), ("Out-of-template", qa_out)):
        if part.get("by_family"):
            lines += ["", f"{where} exact match by family: " + ", ".join(
                f"{name} {_pct(c['accuracy_exact'])} (n={c['n']})" for name, c in part["by_family"].items()) + "."]
    if "skipped" not in qa or "skipped" not in qa_out:
        lines += [
            "",
            "*Exact match*: the whole answer, normalised (lower case, no punctuation or articles, number words as "
            "digits), equals the gold answer. *Contains gold word*: lenient, the gold answer appears as a word in "
            "the normalised answer.",
            "",
        ]

    cap = results.get("captioning", {})
    lines += ["## Captioning", ""]
    if "skipped" in cap:
        lines += [f"Skipped: {cap['skipped']}.", ""]
    else:
        metrics = cap.get("metrics", {})
        lines += ["| " + " | ".join(CAPTION_METRICS) + " |", "|" + " ---: |" * len(CAPTION_METRICS),
                  "| " + " | ".join(_num(metrics.get(m)) for m in CAPTION_METRICS) + " |", ""]
        refs = cap.get("references_per_clip")
        note = f"{cap.get('n', 0)} clips" + (f", {refs:.1f} reference captions each" if refs else "")
        note += f"; prompt: \"{CAPTION_PROMPT}\"; tokenizer: {cap.get('tokenizer')}"
        if cap.get("tokenizer") != "ptb" and cap.get("tokenizer_note"):
            note += f" ({cap['tokenizer_note']})"
        lines += [note + ". pycocoevalcap scores (0-1; CIDEr 0-10); CIDEr's IDF comes from these clips' references.", ""]
        for name, reason in cap.get("unavailable", {}).items():
            lines.append(f"- {name} unavailable: {reason}")
        if cap.get("unavailable"):
            lines.append("")

    gen, gen_out = results.get("generation", {}), results.get("generation_heldout", {})
    lines += ["## Generation requests (does the reply contain a `<video_prompt>`, and the right one?)", ""]
    if "skipped" in gen and "skipped" in gen_out:
        lines += [f"Skipped: {gen['skipped']}.", ""]
    else:
        if "skipped" not in gen:
            lines += ["| n | requests | other | TP | FP | FN | TN | precision | recall | F1 |",
                      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                      f"| {gen['n']} | {gen['positives']} | {gen['negatives']} | {gen['tp']} | {gen['fp']} | {gen['fn']} "
                      f"| {gen['tn']} | {_pct(gen['precision'])} | {_pct(gen['recall'])} | {_pct(gen['f1'])} |", "",
                      f"Recall on first-turn requests: {_pct(gen.get('recall_first_turn_requests'))}; on follow-up "
                      f"requests (asked after their dialogue's earlier turns): "
                      f"{_pct(gen.get('recall_follow_up_requests'))}.", ""]

        lines += measure_table(gen, gen_out, (
            ("prompt written (of requests)", "tp", "recall", "positives"),
            ("prompt asks for the requested objects (`parse_prompt`)", "prompt_asks_for_request",
             "prompt_asks_for_request_rate", "positives"),
            ("content right from the pixels (of requests)", "content_right", "content_right_rate", "positives"),
            ("content right, changes to a clip the user showed", "edits_content_right", "edits_content_right_rate",
             "edits_of_a_shown_clip"),
            ("no video for ordinary questions", "no_video", "no_video_rate", "negatives"),
        ), _pct)
        lines += ["", "*Content right*: the reply's first prompt rendered by the offline synthetic backend shows "
                  "exactly the requested objects, each with its colour, shape and motion, as read from the pixels "
                  "(`gpt4video.evaluation.pixels`)." + "".join(
                      f" {label}: {g['skipped']}." for label, g in (("In-template", gen), ("Out-of-template", gen_out))
                      if "skipped" in g), ""]

    lines += format_media_markdown(results, _pct)
    if results.get("errors"):
        lines += ["## Errors", ""]
        lines += [f"- {e['task']}: {e['error']}" for e in results["errors"]]
        lines.append("")
    return "\n".join(lines)


def write_report(results: dict[str, Any], out_dir: str | os.PathLike[str], *, stem: str = "results",
                 markdown: Callable[[dict[str, Any]], str] | None = None) -> tuple[Path, Path]:
    """Write ``{stem}.json`` and ``{stem}.md`` (by ``markdown``, default :func:`format_markdown`) into
    ``out_dir`` (created if needed), each atomically."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(md_path, (markdown or format_markdown)(results))
    return json_path, md_path
