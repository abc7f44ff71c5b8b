"""Loaders for the public data formats users bring, into :class:`~gpt4video.data.formats.Example` s.

- **WebVid CSV** (:func:`read_webvid_csv`): the WebVid-10M metadata layout, columns
  ``videoid, contentUrl, duration, page_dir, name`` (``name`` is the caption); the video of a row
  is ``{video_dir}/{page_dir}/{videoid}.mp4`` or else ``{video_dir}/{videoid}.mp4``. A plain CSV
  with a ``video`` (or ``path``) column and a ``caption`` column is read too. Each row becomes a
  caption example (see :func:`~gpt4video.data.formats.caption_example`). Column names are matched
  case-insensitively; a ``.tsv`` file is read tab-separated.
- **VideoChat-style instruction JSON** (:func:`read_videochat_json`): a JSON list of objects, either
  as in VideoChat-Instruct-11K, ``{"video": "x.mp4", "QA": [{"i": "", "q": "...", "a": "..."}, ...]}``
  (each QA pair is a user turn — ``i`` and ``q`` joined when both are given — and an assistant
  turn), or in the LLaVA / Video-ChatGPT style, ``{"video": "x.mp4", "conversations":
  [{"from": "human", "value": "<video>\\n..."}, {"from": "gpt", "value": "..."}]}``. ``<video>`` /
  ``<image>`` markers are removed from the text and the video is attached to the first human turn.
  ``"image"`` is accepted in place of ``"video"`` (a still image is a one-frame video); an item
  with neither is a text-only dialogue. A video name without an extension (Video-ChatGPT ids) is
  looked up as ``.mp4``, ``.mkv``, ``.webm``, ``.avi``, ``.mov``.

Video paths are relative to ``video_dir`` (default: the data file's folder). A row or item with a
missing video or malformed content is skipped and reported as a
:class:`~gpt4video.data.formats.RowError` with the file and line (for JSON, the line where the
item starts, and its 0-based index in the message), and logged.

:func:`load_dataset` picks the reader by extension and content: ``.jsonl`` →
:func:`~gpt4video.data.formats.read_jsonl`, ``.csv`` / ``.tsv`` → WebVid, ``.json`` → VideoChat
(or JSONL when the file holds one object per line).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpt4video.errors import InputError
from gpt4video.jsonl import read_text
from gpt4video.processing import Turn

from .formats import (
    Example,
    LoadResult,
    RowProblem,
    _base_dir,
    _check_video_file,
    _describe,
    _open_data_file,
    add_error,
    build_turns,
    caption_example,
    read_jsonl,
    report,
    resolve_video,
    strip_media_markers,
)

__all__ = ["FORMATS", "VIDEO_EXTENSIONS", "detect_format", "load_dataset", "read_videochat_json", "read_webvid_csv"]

#: Formats :func:`load_dataset` accepts.
FORMATS: tuple[str, ...] = ("auto", "jsonl", "webvid", "videochat")
#: Extensions tried for a video name that has none.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")

_VIDEO_COLUMNS = ("video", "path", "video_path", "file")
_CAPTION_COLUMNS = ("caption", "name", "text")


# ============================================================================================
# WebVid CSV


def _csv_layout(file: Path, columns: list[str]) -> tuple[str | None, str]:
    """(video column or None for the WebVid layout, caption column)."""
    if "videoid" in columns:
        if "name" not in columns:
            raise InputError(f"{file}: a WebVid CSV needs a 'name' column (the caption); columns: {columns}")
        return None, "name"
    video_col = next((c for c in _VIDEO_COLUMNS if c in columns), None)
    caption_col = next((c for c in _CAPTION_COLUMNS if c in columns), None)
    if video_col is None or caption_col is None:
        raise InputError(
            f"{file}: expected WebVid columns (videoid, page_dir, name) or a video column "
            f"({'/'.join(_VIDEO_COLUMNS)}) and a caption column ({'/'.join(_CAPTION_COLUMNS)}); found {columns}"
        )
    return video_col, caption_col


def _csv_example(
    record: list[str], columns: list[str], video_col: str | None, caption_col: str, base: Path, check: bool,
    source: str, seed: int,
) -> Example:
    if len(record) != len(columns):
        raise RowProblem(f"{len(record)} fields but the header has {len(columns)} columns")
    row = dict(zip(columns, record))
    caption = row[caption_col].strip()
    if not caption:
        raise RowProblem(f"empty caption (column {caption_col!r})")
    if video_col is None:
        video = _webvid_video(row, base, check)
        meta = {"format": "webvid", **{k: row[k] for k in ("videoid", "contenturl", "duration", "page_dir") if row.get(k)}}
    else:
        video = resolve_video(row[video_col], base, check_files=check, what=video_col)
        meta = {"format": "csv"}
    return caption_example(video, caption, source=source, seed=seed, meta=meta)


def _webvid_video(row: dict[str, str], base: Path, check: bool) -> str:
    videoid = row.get("videoid", "").strip()
    if not videoid:
        raise RowProblem("empty 'videoid'")
    page_dir = row.get("page_dir", "").strip()
    candidates = ([base / page_dir / f"{videoid}.mp4"] if page_dir else []) + [base / f"{videoid}.mp4"]
    if not check:
        return str(candidates[0])
    for candidate in candidates:
        if candidate.exists():
            _check_video_file(candidate)
            return str(candidate)
    raise RowProblem(f"video not found: tried {', '.join(str(c) for c in candidates)}")


def read_webvid_csv(
    path: str | os.PathLike[str],
    *,
    video_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
    seed: int = 0,
) -> LoadResult:
    """Read a WebVid metadata CSV (or a ``video``/``path`` + ``caption`` CSV) into caption examples."""
    file = _open_data_file(path)
    base = _base_dir(file, video_dir)
    name = str(path)
    result = LoadResult()
    delimiter = "\t" if file.suffix.lower() == ".tsv" else ","
    try:
        handle = file.open("r", encoding="utf-8-sig", newline="")
    except OSError as e:
        raise InputError(f"{file}: cannot be read ({e.strerror or e})") from None
    with handle:
        try:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{file}: the CSV file is empty (no header)")
            columns = [h.strip().lower() for h in header]
            video_col, caption_col = _csv_layout(file, columns)
            end = reader.line_num
            for record in reader:
                line, end = end + 1, reader.line_num  # a quoted field may span lines
                if not any(cell.strip() for cell in record):
                    continue
                try:
                    result.examples.append(
                        _csv_example(record, columns, video_col, caption_col, base, check_files, f"{name}:{line}", seed)
                    )
                except RowProblem as e:
                    add_error(result, name, line, str(e))
        except csv.Error as e:
            raise InputError(f"{file}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise InputError(f"{file}: not UTF-8 text ({e.reason})") from None
    return report(result, name)


# ============================================================================================
# VideoChat / LLaVA JSON


def _json_items(text: str, file: Path) -> Iterator[tuple[int, Any]]:
    """(line where the item starts, item) for each item of a top-level JSON list."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()
    line = 1 + text.count("\n", 0, pos)
    if pos >= len(text):
        return
    if text[pos] != "[":
        raise InputError(f"{file}: expected a JSON list of objects ('[' ...), found {text[pos]!r} at line {line}")
    counted = pos
    pos = ws.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(f"{file}:{e.lineno}: bad JSON: {e.msg} (column {e.colno})") from None
        yield line, item
        pos = ws.match(text, end).end()
        if text.startswith(",", pos):
            pos = ws.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            break
        else:
            bad = 1 + text.count("\n", 0, pos)
            raise InputError(f"{file}:{bad}: bad JSON: expected ',' or ']' between list items")


def _find_video(value: Any, base: Path, check: bool, key: str) -> str:
    if check and isinstance(value, str) and value.strip() and not Path(value).suffix:
        stem = Path(value.strip()).expanduser()
        stem = stem if stem.is_absolute() else base / stem
        for ext in VIDEO_EXTENSIONS:
            if stem.with_name(stem.name + ext).is_file():
                return resolve_video(str(stem) + ext, base, check_files=True, what=key)
    return resolve_video(value, base, check_files=check, what=key)


def _qa_turns(qa: Any) -> list[tuple[str, str, list[int]]]:
    if not isinstance(qa, list) or not qa:
        raise RowProblem(f"'QA' must be a non-empty list of {{'q', 'a'}} objects, got {_describe(qa)}")
    turns: list[tuple[str, str, list[int]]] = []
    for i, pair in enumerate(qa):
        if not isinstance(pair, dict):
            raise RowProblem(f"QA {i} must be an object, got {_describe(pair)}")
        parts = []
        for key in ("i", "q", "question"):
            value = pair.get(key)
            if value is not None and not isinstance(value, str):
                raise RowProblem(f"QA {i}: {key!r} must be a string, got {_describe(value)}")
            if value and value.strip():
                parts.append(strip_media_markers(value))
        answer = pair.get("a", pair.get("answer"))
        if not isinstance(answer, str):
            raise RowProblem(f"QA {i}: the answer 'a' must be a string, got {_describe(answer)}")
        if not answer.strip():
            raise RowProblem(f"QA {i}: the answer 'a' is empty")
        if not parts and i > 0:
            raise RowProblem(f"QA {i}: the question 'q' is empty")
        turns += [("user", "\n".join(p for p in parts if p), []), ("assistant", strip_media_markers(answer), [])]
    return turns


_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def _conversation_turns(conversations: Any) -> list[tuple[str, str, list[int]]]:
    if not isinstance(conversations, list) or not conversations:
        raise RowProblem(f"'conversations' must be a non-empty list of turns, got {_describe(conversations)}")
    turns: list[tuple[str, str, list[int]]] = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise RowProblem(f"turn {i} must be an object, got {_describe(turn)}")
        role = turn.get("from", turn.get("role"))
        if not isinstance(role, str) or role.lower() not in _ROLES:
            raise RowProblem(f"turn {i}: 'from' must be 'human' or 'gpt', got {_describe(role)}")
        value = turn.get("value", turn.get("text"))
        if not isinstance(value, str):
            raise RowProblem(f"turn {i}: 'value' must be a string, got {_describe(value)}")
        turns.append((_ROLES[role.lower()], strip_media_markers(value), []))
    if not any(role == "assistant" for role, _, _ in turns):
        raise RowProblem("the conversation has no 'gpt' turn")
    return turns


def _videochat_item(item: Any, base: Path, check: bool, source: str) -> Example:
    if not isinstance(item, dict):
        raise RowProblem(f"expected an object, got {type(item).__name__}")
    if "QA" in item:
        style, raw_turns = "videochat", _qa_turns(item["QA"])
    elif "conversations" in item:
        style, raw_turns = "llava", _conversation_turns(item["conversations"])
    else:
        raise RowProblem(f"expected 'QA' (VideoChat) or 'conversations' (LLaVA style); the item has keys {sorted(item)}")
    key = "video" if item.get("video") is not None else "image" if item.get("image") is not None else None
    names: list[Any] = []
    if key is not None:
        value = item[key]
        names = value if isinstance(value, list) else [value]
        if not names:
            raise RowProblem(f"{key!r} is an empty list")
    videos = [_find_video(v, base, check, key) for v in names]  # type: ignore[arg-type]
    turns: list[Turn] = build_turns(raw_turns, len(videos))
    meta: dict[str, Any] = {"format": style}
    if isinstance(item.get("id"), (str, int)):
        meta["id"] = item["id"]
    try:
        return Example(turns=turns, videos=videos, source=source, kind="conversation" if videos else "dialogue",
                       meta=meta)
    except InputError as e:
        raise RowProblem(str(e)) from None


def read_videochat_json(
    path: str | os.PathLike[str],
    *,
    video_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
) -> LoadResult:
    """Read a VideoChat-Instruct or LLaVA/Video-ChatGPT style JSON list into conversation examples."""
    file = _open_data_file(path)
    base = _base_dir(file, video_dir)
    name = str(path)
    text = read_text(file)
    result = LoadResult()
    for index, (line, item) in enumerate(_json_items(text, file)):
        try:
            result.examples.append(_videochat_item(item, base, check_files, f"{name}:{line}"))
        except RowProblem as e:
            add_error(result, name, line, f"item {index}: {e}")
    return report(result, name)


# ============================================================================================
# Dispatch


def _sniff(file: Path) -> str:
    """'[' for a JSON list, '{' for JSON lines, '' otherwise (first non-space character)."""
    try:
        with file.open("r", encoding="utf-8-sig", errors="replace") as handle:
            while chunk := handle.read(4096):
                stripped = chunk.lstrip()
                if stripped:
                    return stripped[0] if stripped[0] in "[{" else ""
    except OSError as e:
        raise InputError(f"{file}: cannot be read ({e.strerror or e})") from None
    return ""


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"jsonl"``, ``"webvid"`` or ``"videochat"`` for a data file, by extension and content."""
    file = _open_data_file(path)
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "webvid"
    first = _sniff(file)
    if first == "[":
        return "videochat"
    if first == "{":
        return "jsonl"
    raise InputError(
        f"{file}: cannot tell the data format (expected .jsonl, .csv/.tsv, or a .json list); "
        f"pass format= one of {', '.join(FORMATS[1:])}"
    )


def load_dataset(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",  # noqa: A002 - the natural name for callers
    video_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
    seed: int = 0,
    kind: str | None = None,
) -> LoadResult:
    """Read a data file of any supported format into examples.

    Args:
        path: A ``.jsonl`` (project schemas), ``.csv``/``.tsv`` (WebVid) or ``.json`` (VideoChat /
            LLaVA list; a ``.json`` file holding one object per line is read as JSONL).
        format: ``"auto"`` (by extension and content), ``"jsonl"``, ``"webvid"`` or ``"videochat"``.
        video_dir: Folder that relative video paths start from (default: the file's folder).
        check_files: Check that each video file exists (no decoding).
        seed: Fixes the caption instructions of caption pairs.
        kind: For JSONL only: the row schema to require (see :func:`~gpt4video.data.formats.read_jsonl`).

    Raises:
        InputError: the file is missing or unreadable as a whole, or the format is unknown.
    """
    if format not in FORMATS:
        raise InputError(f"unknown data format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "auto":
        format = detect_format(path)
    if kind is not None and format != "jsonl":
        raise InputError(f"kind= only applies to JSONL files, not to format {format!r}")
    if format == "jsonl":
        return read_jsonl(path, kind=kind, video_dir=video_dir, check_files=check_files, seed=seed)
    if format == "webvid":
        return read_webvid_csv(path, video_dir=video_dir, check_files=check_files, seed=seed)
    return read_videochat_json(path, video_dir=video_dir, check_files=check_files)
