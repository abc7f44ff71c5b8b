"""Readers of the public video benchmarks, in the layouts their releases and the common evaluation scripts use.

**Video QA** (MSVD-QA, MSRVTT-QA, ActivityNet-QA), from a folder ``DIR`` holding either

- ``test_q.json`` (a list of ``{"video_name", "question_id", "question"}``) and ``test_a.json`` (a list of
  ``{"answer", "question_id"}``, with an optional ``type``): the ActivityNet-QA release and the files
  Video-ChatGPT's and Video-LLaVA's zero-shot QA scripts read for all three; questions and answers are
  joined by ``question_id``; or
- ``test_qa.json`` (a list of ``{"question", "answer", "id", "video_id"}``): the MSVD-QA and MSRVTT-QA
  releases, where ``video_id`` is a number: MSRVTT-QA's N is ``videoN``; MSVD-QA's N is ``vidN``, which
  ``youtube_mapping.txt`` (lines ``<YouTube clip name> vid<N>``) turns into the clip's file name.

Videos are looked up by name with any of the extensions of
:data:`~gpt4video.data.loaders.VIDEO_EXTENSIONS` in ``video_dir`` if given, else in the usual folders
under ``DIR`` (:data:`VIDEO_FOLDERS`) and ``DIR`` itself. A name is also tried as the releases spell it
elsewhere: MSVD's ``vidN`` through the mapping file, MSR-VTT's bare number as ``videoN``, and
ActivityNet's name with and without its ``v_`` prefix. A question whose video is not found is reported
in one line and counted, and left out of what is answered (as the published scripts do).

**MSR-VTT captions**, from ``test_videodatainfo.json`` / ``train_val_videodatainfo.json`` (or the
merged ``MSRVTT_data.json``): ``videos`` (``video_id``, ``split``) and ``sentences`` (``video_id``,
``caption``), about 20 references a clip. Split ``test`` is the official 2,990-clip test split;
``1k-a`` the 1,000 clips of ``MSRVTT_JSFUSION_test.csv`` (columns ``key, vid_key, video_id, sentence``),
each with all its references from the JSON files; ``validate`` the official validation split.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt4video.errors import InputError
from gpt4video.jsonl import read_text

__all__ = [
    "CAPTION_SPLITS",
    "QA_BENCHMARKS",
    "VIDEO_FOLDERS",
    "BenchmarkSet",
    "CaptionItem",
    "QAItem",
    "read_msrvtt_captions",
    "read_video_qa",
]

#: The video QA benchmarks :func:`read_video_qa` reads.
QA_BENCHMARKS: tuple[str, ...] = ("msvd-qa", "msrvtt-qa", "activitynet-qa")
#: The MSR-VTT caption splits :func:`read_msrvtt_captions` reads.
CAPTION_SPLITS: tuple[str, ...] = ("test", "1k-a", "validate")
#: Folders under the data folder searched for videos (with the data folder itself, last).
VIDEO_FOLDERS: tuple[str, ...] = ("videos", "video", "YouTubeClips", "TestVideo", "TrainValVideo", "all_test",
                                  "videos/all")
MSVD_MAPPING = "youtube_mapping.txt"
JSFUSION_CSV = "MSRVTT_JSFUSION_test.csv"
CAPTION_FILES: tuple[str, ...] = ("test_videodatainfo.json", "train_val_videodatainfo.json", "MSRVTT_data.json")



#: Where a missing video is reported: one line each (default: stderr).
Report = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class QAItem:
    """One benchmark question. ``video``: the file found for ``video_name`` (None: not found)."""

    question_id: str
    question: str
    answer: str
    video_name: str
    video: str | None = None
    type: Any = None


@dataclass
class BenchmarkSet:
    """A benchmark's items: ``items`` with a video, ``missing`` without one; ``video_dirs`` searched, ``files`` read."""

    benchmark: str
    split: str
    data_dir: str
    items: list[Any]
    missing: list[Any] = field(default_factory=list)
    video_dirs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass
class CaptionItem:
    """One clip to caption: its id, video file (None: not found) and reference captions."""

    video_id: str
    references: list[str]
    video: str | None = None


# ============================================================================================
# Files


def _load_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def _objects(path: Path, fields: Iterable[str]) -> list[dict[str, Any]]:
    """The list of JSON objects in ``path``, each with every one of ``fields``."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"{path}: item {i} is not an object ({type(row).__name__})")
        for key in fields:
            if key not in row:
                raise InputError(f"{path}: item {i} has no {key!r} (it has {', '.join(map(repr, row)) or 'nothing'})")
    return data


def _text(value: Any, path: Path, i: int, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{path}: item {i}: {key!r} must be a string, got {type(value).__name__}")
    return str(value).strip()


class _Videos:
    """The video files of some folders, by name without extension (the first folder that has a name wins)."""

    def __init__(self, data_dir: Path, video_dir: str | os.PathLike[str] | None) -> None:
        from gpt4video.data.loaders import VIDEO_EXTENSIONS

        if video_dir is not None:
            folder = Path(video_dir).expanduser()
            if not folder.is_dir():
                raise InputError(f"{folder}: video folder not found")
            folders = [folder]
        else:
            folders = [data_dir / name for name in VIDEO_FOLDERS if (data_dir / name).is_dir()] + [data_dir]
        self.folders = [Path(os.path.abspath(f)) for f in folders]
        self.by_stem: dict[str, str] = {}
        for folder in self.folders:
            try:
                names = sorted(os.listdir(folder))
            except OSError as e:
                raise InputError(f"{folder}: cannot list the video folder ({e.strerror or e})") from None
            for name in names:
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and (folder / name).is_file():
                    self.by_stem.setdefault(stem, str(folder / name))

    def find(self, names: Iterable[str]) -> str | None:
        for name in names:
            if name in self.by_stem:
                return self.by_stem[name]
            stem = os.path.splitext(name)[0]  # a name given with its extension
            if stem != name and stem in self.by_stem:
                return self.by_stem[stem]
        return None

    def where(self) -> str:
        return ", ".join(map(str, self.folders))

    def sort(self, items: list[Any], report: Report | None, label: Callable[[Any], str]) -> tuple[list, list]:
        """(items with a video, items without one); each of the latter reported in one line."""
        found, missing = [], []
        for item in items:
            (found if item.video is not None else missing).append(item)
            if item.video is None and report is not None:
                report(f"{label(item)} not found in {self.where()}")
        return found, missing


# ============================================================================================
# Video QA


def _msvd_mapping(path: Path) -> dict[str, str]:
    """``vidN`` -> YouTube clip name, from MSVD-QA's ``youtube_mapping.txt``."""
    mapping: dict[str, str] = {}
    lines = read_text(path).splitlines()
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise InputError(f"{path}:{number}: expected '<YouTube clip name> vid<N>', got {line.strip()!r}")
        mapping[parts[1]] = parts[0]
    return mapping


def _candidates(benchmark: str, name: str, mapping: dict[str, str]) -> list[str]:
    """The file names (without extension) a benchmark's video name may have."""
    names = [name]
    if benchmark == "msvd-qa":
        for key in (name, f"vid{name}"):
            if key in mapping:
                names.append(mapping[key])
    elif benchmark == "msrvtt-qa" and name.isdigit():
        names.append(f"video{name}")
    elif benchmark == "activitynet-qa":
        names.append(name[2:] if name.startswith("v_") else f"v_{name}")
    return names


def read_video_qa(benchmark: str, data_dir: str | os.PathLike[str], video_dir: str | os.PathLike[str] | None = None,
                  *, report: Report | None = _stderr) -> BenchmarkSet:
    """The questions of ``benchmark`` (one of :data:`QA_BENCHMARKS`) in ``data_dir`` (see the module docstring).

    Each question whose video is not found is reported through ``report`` (one line) and put in ``missing``.
    Raises InputError for a missing folder or file, a file that is not the benchmark's JSON, or a question
    without an answer.
    """
    if benchmark not in QA_BENCHMARKS:
        raise InputError(f"unknown video QA benchmark {benchmark!r}; choose {', '.join(QA_BENCHMARKS)}")
    data = Path(data_dir).expanduser()
    if not data.is_dir():
        raise InputError(f"{data}: data folder not found")
    questions, answers, combined = data / "test_q.json", data / "test_a.json", data / "test_qa.json"
    mapping_path = data / MSVD_MAPPING
    mapping = _msvd_mapping(mapping_path) if benchmark == "msvd-qa" and mapping_path.is_file() else {}
    rows: list[tuple[str, str, str, str, Any]] = []  # (question_id, question, answer, video name, type)
    if questions.is_file() or answers.is_file():
        if not (questions.is_file() and answers.is_file()):
            raise InputError(f"{data}: {questions.name} and {answers.name} go together; "
                             f"{(answers if questions.is_file() else questions).name} is not there")
        files = [questions, answers]
        gold: dict[str, tuple[str, Any]] = {}
        for i, row in enumerate(_objects(answers, ("answer", "question_id"))):
            qid = _text(row["question_id"], answers, i, "question_id")
            if qid in gold:
                raise InputError(f"{answers}: question_id {qid!r} appears twice")
            gold[qid] = (_text(row["answer"], answers, i, "answer"), row.get("type"))
        for i, row in enumerate(_objects(questions, ("video_name", "question_id", "question"))):
            qid = _text(row["question_id"], questions, i, "question_id")
            if qid not in gold:
                raise InputError(f"{questions}: question_id {qid!r} (item {i}) has no answer in {answers.name}")
            rows.append((qid, _text(row["question"], questions, i, "question"), gold[qid][0],
                         _text(row["video_name"], questions, i, "video_name"), gold[qid][1]))
    elif combined.is_file():
        files = [combined]
        if benchmark == "msvd-qa" and not mapping:
            raise InputError(f"{combined}: MSVD-QA names its videos by number, and {mapping_path} (lines "
                             "'<YouTube clip name> vid<N>') is needed to find them")
        for i, row in enumerate(_objects(combined, ("question", "answer", "id", "video_id"))):
            number = _text(row["video_id"], combined, i, "video_id")
            name = f"vid{number}" if benchmark == "msvd-qa" else f"video{number}" if number.isdigit() else number
            rows.append((_text(row["id"], combined, i, "id"), _text(row["question"], combined, i, "question"),
                         _text(row["answer"], combined, i, "answer"), name, row.get("category_id", row.get("type"))))
    else:
        raise InputError(f"{data}: neither test_q.json + test_a.json nor test_qa.json is there; is this a "
                         f"{benchmark} folder?")
    if mapping:
        files.append(mapping_path)
    seen: set[str] = set()
    for qid, *_ in rows:
        if qid in seen:
            raise InputError(f"{files[0]}: question id {qid!r} appears twice")
        seen.add(qid)

    videos = _Videos(data, video_dir)
    items = [QAItem(qid, question, answer, name, videos.find(_candidates(benchmark, name, mapping)), kind)
             for qid, question, answer, name, kind in rows]
    found, missing = videos.sort(items, report, lambda i: f"question {i.question_id}: video {i.video_name!r}")
    return BenchmarkSet(benchmark, "test", str(data), found, missing, [str(f) for f in videos.folders],
                        [str(f) for f in files])


# ============================================================================================
# MSR-VTT captions


def _caption_tables(data: Path) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(video_id -> split, video_id -> references, files read) from the MSR-VTT JSON files in ``data``."""
    splits: dict[str, str] = {}
    references: dict[str, list[str]] = {}
    files = [data / name for name in CAPTION_FILES if (data / name).is_file()]
    if not files:
        raise InputError(f"{data}: none of {', '.join(CAPTION_FILES)} is there; is this an MSR-VTT folder?")
    for path in files:
        content = _load_json(path)
        if not isinstance(content, dict) or not isinstance(content.get("videos"), list) or \
                not isinstance(content.get("sentences"), list):
            raise InputError(f"{path}: expected an object with lists 'videos' and 'sentences'")
        for i, video in enumerate(content["videos"]):
            if not isinstance(video, dict) or "video_id" not in video:
                raise InputError(f"{path}: videos item {i} has no 'video_id'")
            splits.setdefault(_text(video["video_id"], path, i, "video_id"), str(video.get("split", "")))
        seen = {vid for vid in references}
        for i, sentence in enumerate(content["sentences"]):
            if not isinstance(sentence, dict) or "video_id" not in sentence or "caption" not in sentence:
                raise InputError(f"{path}: sentences item {i} needs 'video_id' and 'caption'")
            vid = _text(sentence["video_id"], path, i, "video_id")
            if vid in seen:  # MSRVTT_data.json repeats the clips of the other files: keep one copy
                continue
            references.setdefault(vid, []).append(_text(sentence["caption"], path, i, "caption"))
    return splits, references, [str(f) for f in files]


def _jsfusion_ids(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if "video_id" not in (reader.fieldnames or []):
                raise InputError(f"{path}: no 'video_id' column (columns: {', '.join(reader.fieldnames or [])})")
            ids = [row["video_id"].strip() for row in reader if (row.get("video_id") or "").strip()]
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: not a readable CSV file ({e})") from None
    return list(dict.fromkeys(ids))


def read_msrvtt_captions(data_dir: str | os.PathLike[str], video_dir: str | os.PathLike[str] | None = None, *,
                         split: str = "test", report: Report | None = _stderr) -> BenchmarkSet:
    """The clips of an MSR-VTT ``split`` (one of :data:`CAPTION_SPLITS`) in ``data_dir`` with their references.

    A clip whose video is not found is reported through ``report`` (one line) and put in ``missing``.
    """
    if split not in CAPTION_SPLITS:
        raise InputError(f"unknown MSR-VTT split {split!r}; choose {', '.join(CAPTION_SPLITS)}")
    data = Path(data_dir).expanduser()
    if not data.is_dir():
        raise InputError(f"{data}: data folder not found")
    splits, references, files = _caption_tables(data)
    if split == "1k-a":
        csv_path = data / JSFUSION_CSV
        if not csv_path.is_file():
            raise InputError(f"{data}: the 1k-A split is read from {JSFUSION_CSV}, which is not there")
        ids = _jsfusion_ids(csv_path)
        files.append(str(csv_path))
    else:
        ids = [vid for vid, s in splits.items() if s == split]
    if not ids:
        raise InputError(f"{data}: no clips of split {split!r} in {', '.join(Path(f).name for f in files)}")
    without = [vid for vid in ids if not references.get(vid)]
    if without:
        raise InputError(f"{data}: {len(without)} clips of split {split!r} have no reference captions "
                         f"(first: {without[0]})")
    videos = _Videos(data, video_dir)
    items = [CaptionItem(vid, references[vid], videos.find([vid, f"video{vid}"] if vid.isdigit() else [vid]))
             for vid in ids]
    found, missing = videos.sort(items, report, lambda i: f"clip {i.video_id}: video")
    return BenchmarkSet("msr-vtt", split, str(data), found, missing, [str(f) for f in videos.folders], files)


# ============================================================================================
# Running a benchmark: predictions (resumable), then scores


QUESTIONS_FILE = "questions.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
JUDGMENTS_FILE = "judgments.jsonl"
SCORED_FILE = "scored.jsonl"
_LISTED = 10  # failures and missing videos listed by name in results.json


def claim_folder(out_dir: str | os.PathLike[str], name: str, text: str, work: str, what: str) -> Path:
    """The folder ``out_dir`` (made if needed) for a resumable run over the inputs ``text``, kept in its file
    ``name``: a folder holding another run's inputs, or its outputs (``work``) without them, is refused."""
    from gpt4video.config import atomic_write_text

    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out must be a directory")
    out.mkdir(parents=True, exist_ok=True)
    inputs = out / name
    if inputs.is_file():
        if inputs.read_text(encoding="utf-8") != text:
            raise InputError(f"{out}: holds {what} for other inputs ({name} differs: another benchmark, data "
                             "folder or limit); choose another --out, or delete it to start over")
    elif (out / work).exists():
        raise InputError(f"{out / work}: {what} without their {name}; choose another --out")
    else:
        atomic_write_text(inputs, text)
    return out


def predict_rows(model: Any, rows: list[dict[str, Any]], out_dir: str | os.PathLike[str], *, params: Any = None,
                 progress: bool = True) -> list[dict[str, Any]]:
    """Answer ``rows`` (``{"question", "video", ...}``) with the batch machinery: ``OUT/questions.jsonl`` is
    the input and ``OUT/predictions.jsonl`` the output of :func:`~gpt4video.batch.predict_file`, so a rerun
    answers only what is not there yet (and loads no model if nothing is left). ``model``: what
    ``predict_file`` takes (an Assistant, a GPT4Video, or a function returning one). Returns one output row
    per input row, in order (``text``, or ``error``)."""
    from gpt4video.batch import predict_file
    from gpt4video.jsonl import jsonl_text, read_jsonl

    out = claim_folder(out_dir, QUESTIONS_FILE, jsonl_text(rows), PREDICTIONS_FILE, "predictions")
    questions, predictions = out / QUESTIONS_FILE, out / PREDICTIONS_FILE
    predict_file(model, questions, predictions, params=params, progress=progress)
    by_line = {row["_line"]: row for row in read_jsonl(predictions, what="prediction row")}
    missing = [n for n in range(1, len(rows) + 1) if n not in by_line]
    if missing:  # predict_file writes a row for every input line; anything else is a broken file
        raise InputError(f"{predictions}: no prediction for question line {missing[0]}; delete the file to redo it")
    return [by_line[n] for n in range(1, len(rows) + 1)]


def _limited(items: list[Any], limit: int | None) -> list[Any]:
    from gpt4video.evaluation.synthetic import _spread

    return _spread(items, limit)


def evaluate_video_qa(model: Any, qa: BenchmarkSet, out_dir: str | os.PathLike[str], *, judge: Any = None,
                      params: Any = None, max_questions: int | None = None, progress: bool = True,
                      model_name: str | None = None) -> dict[str, Any]:
    """Predictions for ``qa``'s questions (see :func:`predict_rows`), then their scores: with ``judge`` (a
    :class:`~gpt4video.evaluation.judge.JudgeConfig` with an endpoint) the GPT judge's accuracy and mean
    score; always the exact and contains-match figures (``no_judge``). ``max_questions``: at most that many,
    evenly spread over the file. Writes ``scored.jsonl`` (one row a question) into ``out_dir`` and returns
    the results (``write_report`` writes them as results.json and results.md)."""
    from gpt4video.evaluation.judge import Judge, summarize
    from gpt4video.data.synthetic.grading import answers_match
    from gpt4video.evaluation.synthetic import contains_answer
    from gpt4video.jsonl import write_jsonl

    items = _limited(qa.items, max_questions)
    rows = [{"question": i.question, "video": i.video, "question_id": i.question_id, "answer": i.answer}
            for i in items]
    outputs = predict_rows(model, rows, out_dir, params=params, progress=progress) if rows else []
    answered = [(item, out) for item, out in zip(items, outputs) if "error" not in out]
    errors = [{"question_id": item.question_id, "error": out["error"]} for item, out in zip(items, outputs)
              if "error" in out]

    exact = [answers_match(out.get("text", ""), item.answer) for item, out in answered]
    contains = [contains_answer(out.get("text", ""), item.answer) for item, out in answered]
    n = len(answered)
    results: dict[str, Any] = {
        "benchmark": qa.benchmark, "data_dir": qa.data_dir, "files": qa.files, "video_dirs": qa.video_dirs,
        "model": model_name, "judge": None, "accuracy": None, "score": None,
        "no_judge": {"n": n, "exact": sum(exact), "contains": sum(contains),
                     "accuracy_exact": sum(exact) / n if n else None,
                     "accuracy_contains": sum(contains) / n if n else None},
    }
    judgments = None
    counts: dict[str, Any] = {
        "questions": len(qa.items) + len(qa.missing), "missing_videos": len(qa.missing), "asked": len(items),
        "prediction_errors": len(errors), "answered": n,
    }
    if judge is not None and judge.base_url is not None:
        judgments = Judge(judge, Path(out_dir) / JUDGMENTS_FILE).judge_all(
            [(item.question, item.answer, out.get("text", "")) for item, out in answered], progress=progress)
        summary = summarize(judgments)
        results.update(judge=judge.model, accuracy=summary.pop("accuracy"), score=summary.pop("score"))
        counts.update(summary)
        results["failed_judgments"] = [{"question_id": item.question_id, "error": j.error}
                                       for (item, _), j in zip(answered, judgments) if j.error][:_LISTED]
    results["counts"] = counts
    results["missing_videos"] = [i.question_id for i in qa.missing[:_LISTED]]
    results["prediction_errors"] = errors[:_LISTED]
    types = sorted({str(item.type) for item, _ in answered if item.type is not None})
    if types:
        by_type: dict[str, dict[str, Any]] = {}
        for k, (item, _) in enumerate(answered):
            if item.type is None:
                continue
            cell = by_type.setdefault(str(item.type), {"n": 0, "exact": 0, "yes": 0, "score_sum": 0})
            cell["n"] += 1
            cell["exact"] += int(exact[k])
            if judgments is not None:
                cell["yes"] += int(judgments[k].yes)
                cell["score_sum"] += judgments[k].score
        results["by_type"] = {t: {"n": c["n"], "accuracy_exact": c["exact"] / c["n"],
                                  **({"accuracy": c["yes"] / c["n"], "score": c["score_sum"] / c["n"]}
                                     if judgments is not None else {})} for t, c in sorted(by_type.items())}
    scored = []
    for k, (item, out) in enumerate(answered):
        row = {"question_id": item.question_id, "question": item.question, "answer": item.answer,
               "prediction": out.get("text", ""), "exact": exact[k], "contains": contains[k]}
        if judgments is not None:
            row.update(pred="yes" if judgments[k].yes else "no", score=judgments[k].score,
                       judge_error=judgments[k].error)
        scored.append(row)
    write_jsonl(Path(out_dir) / SCORED_FILE, scored)
    results["examples"] = scored[:3]
    return results


def format_video_qa_markdown(results: dict[str, Any]) -> str:
    """The results of :func:`evaluate_video_qa` as a short Markdown report."""
    c = results["counts"]
    nj = results["no_judge"]
    pct = (lambda v: "n/a" if v is None else f"{100 * v:.1f}%")
    lines = [f"# {results['benchmark']}", "", f"- model: `{results.get('model')}`",
             f"- data: `{results['data_dir']}`",
             f"- questions: {c['questions']}, missing videos: {c['missing_videos']}, asked: {c['asked']}, "
             f"answered: {c['answered']}, prediction errors: {c['prediction_errors']}", ""]
    if results["judge"] is not None:
        lines += ["| judge | accuracy | score | yes | no | failed judgments |", "| --- | ---: | ---: | ---: | ---: | ---: |",
                  f"| {results['judge']} | {pct(results['accuracy'])} | "
                  f"{'n/a' if results['score'] is None else format(results['score'], '.2f')} | {c['yes']} | {c['no']} | "
                  f"{c['failed_judgments']} |", "",
                  "Accuracy = yes / (yes + no) and score = mean 0-5 of the judge (the Video-ChatGPT protocol); a "
                  "judgment that failed after its retries counts as no / 0.", ""]
    lines += ["| no judge | n | exact match | contains match |", "| --- | ---: | ---: | ---: |",
              f"| no judge | {nj['n']} | {pct(nj['accuracy_exact'])} | {pct(nj['accuracy_contains'])} |", "",
              "*No judge*: exact match of the normalised answer (lower case, no punctuation or articles, number words "
              "as digits), and whether the gold answer appears as words in it; not comparable with judged figures.",
              ""]
    return "\n".join(lines)


def evaluate_captions(model: Any, captions: BenchmarkSet, out_dir: str | os.PathLike[str], *, params: Any = None,
                      max_clips: int | None = None, tokenizer: str = "auto", meteor: bool = True,
                      progress: bool = True, model_name: str | None = None) -> dict[str, Any]:
    """Captions for ``captions``' clips (asked with :data:`~gpt4video.evaluation.synthetic.CAPTION_PROMPT`,
    through :func:`predict_rows`), scored against every clip's references with
    :func:`~gpt4video.evaluation.synthetic.caption_scores` (BLEU-1..4, METEOR, ROUGE-L, CIDEr). ``max_clips``:
    at most that many, evenly spread. Writes ``scored.jsonl`` into ``out_dir`` and returns the results."""
    from gpt4video.evaluation.synthetic import CAPTION_PROMPT, caption_scores
    from gpt4video.jsonl import write_jsonl

    items = _limited(captions.items, max_clips)
    rows = [{"question": CAPTION_PROMPT, "video": i.video, "video_id": i.video_id} for i in items]
    outputs = predict_rows(model, rows, out_dir, params=params, progress=progress) if rows else []
    answered = [(item, out) for item, out in zip(items, outputs) if "error" not in out]
    errors = [{"video_id": item.video_id, "error": out["error"]} for item, out in zip(items, outputs)
              if "error" in out]
    scores = caption_scores([item.references for item, _ in answered], [out.get("text", "") for _, out in answered],
                            tokenizer=tokenizer, meteor=meteor)
    scored = [{"video_id": item.video_id, "prediction": out.get("text", ""), "references": item.references}
              for item, out in answered]
    write_jsonl(Path(out_dir) / SCORED_FILE, scored)
    return {
        "benchmark": "msr-vtt", "split": captions.split, "data_dir": captions.data_dir, "files": captions.files,
        "video_dirs": captions.video_dirs, "model": model_name, "prompt": CAPTION_PROMPT, **scores,
        "counts": {"clips": len(captions.items) + len(captions.missing), "missing_videos": len(captions.missing),
                   "asked": len(items), "prediction_errors": len(errors), "captioned": len(answered),
                   "references": sum(len(item.references) for item, _ in answered)},
        "missing_videos": [i.video_id for i in captions.missing[:_LISTED]],
        "prediction_errors": errors[:_LISTED],
        "examples": [{**row, "references": row["references"][:2]} for row in scored[:3]],
    }


def format_captions_markdown(results: dict[str, Any]) -> str:
    """The results of :func:`evaluate_captions` as a short Markdown report."""
    from gpt4video.evaluation.synthetic import CAPTION_METRICS

    c = results["counts"]
    metrics = results["metrics"]
    cell = (lambda v: v if isinstance(v, str) else "n/a" if v is None else f"{v:.4f}")
    lines = [f"# MSR-VTT captioning ({results['split']} split)", "", f"- model: `{results.get('model')}`",
             f"- data: `{results['data_dir']}`",
             f"- clips: {c['clips']}, missing videos: {c['missing_videos']}, asked: {c['asked']}, captioned: "
             f"{c['captioned']}, prediction errors: {c['prediction_errors']}; prompt: \"{results['prompt']}\"", "",
             "| " + " | ".join(CAPTION_METRICS) + " |", "|" + " ---: |" * len(CAPTION_METRICS),
             "| " + " | ".join(cell(metrics.get(m)) for m in CAPTION_METRICS) + " |", "",
             f"pycocoevalcap scores (0-1; CIDEr 0-10) against all references of each clip; tokenizer: "
             f"{results.get('tokenizer')}.", ""]
    lines += [f"- {name} unavailable: {reason}" for name, reason in results.get("unavailable", {}).items()]
    return "\n".join(lines) + "\n"
