"""Batch inference: answer every row of a JSONL file, writing one JSON line per row as it goes.

Input rows (one JSON object per line; blank lines are ignored)::

    {"question": "What color is the circle?", "video": "clips/7.mp4", "id": 12}
    {"prompt": "Compare the two clips.", "videos": ["a.mp4", "/data/b.mp4"]}
    {"question": "Show me a purple square that grows."}
    {"question": "What does the narrator say?", "audio": "speech/3.wav"}

``question`` (or ``prompt``) is required; ``video`` (a path) or ``videos`` (a list of paths) is
optional, and so is ``audio`` (a path or a list of paths: audio files whose speech the assistant's
recogniser turns into subtitles). Relative paths are relative to ``video_dir`` (default: the input file's
folder); ``~`` is expanded. Every other field is kept. Each row is its own one-turn conversation.

Output rows are the input fields plus the reply as every caller serialises it
(:meth:`~gpt4video.pipeline.ReplyOutput.to_dict`: ``text``, ``video_prompts``, ``generated_videos``, the
safety outcome ``refused``, ``refused_by``, ``refusal_category``, ``blocked_prompts``, ``withheld`` and
``safety``, every checker's verdict, token counts and ``timings`` in seconds) and ``_line``, the 1-based
line number of the row in the input file; an input field of the same name as an output key is replaced.
With ``output_dir`` the generated videos and images are saved there (their paths in ``generated_videos`` and
``generated_images``). A row that cannot be answered (bad JSON, no question, a video that cannot be read, ...)
gets an ``error`` field instead, and the run goes on.

The output is appended and flushed one row at a time, so a crash loses at most the row being written.
Running again on the same output resumes: rows whose ``_line`` is already in the output (answered or
failed) are skipped, and a partially written last line left by a crash is dropped and redone. To retry
failed rows, delete their lines from the output.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import InputError

if TYPE_CHECKING:
    from .modeling import GenerationParams, GPT4Video
    from .pipeline import Assistant

logger = logging.getLogger(__name__)

__all__ = ["PredictSummary", "predict_file", "read_done_lines"]

#: What :func:`predict_file` accepts as its model: an Assistant, a GPT4Video, or a function that
#: returns one of them (called only if some row still has to be answered).
ModelLike = Union["Assistant", "GPT4Video", Callable[[], Any]]


@dataclass
class PredictSummary:
    """``rows``: non-blank rows in the input; ``written``: output rows written by this run (answers
    and errors); ``skipped_existing``: rows already in the output from an earlier run; ``errors``:
    rows of this run that got an ``error`` instead of a prediction."""

    rows: int
    written: int
    skipped_existing: int
    errors: int


class _RowProblem(Exception):
    """What is wrong with one input row (becomes its ``error`` field)."""


# ============================================================================================
# Reading the input and the existing output


def _input_rows(path: Path) -> list[tuple[int, bytes]]:
    """(1-based line number, raw line) of every non-blank line of the input file."""
    if not path.exists():
        raise InputError(f"{path}: input file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    return [(n, line) for n, line in enumerate(data.splitlines(), start=1) if line.strip()]


_BAD = object()  # a line that is not valid JSON


def read_done_lines(output_path: str | os.PathLike[str], *, repair: bool = True) -> set[int]:
    """The input line numbers (``_line``) already in an output file (empty if it does not exist).

    Rows are written whole with their newline last, so a last line without a final newline is what a
    crash in the middle of a write leaves: with ``repair`` it is cut off the file (and a warning
    logged), to be redone. Any other line that is not an output row of this module is an error, and
    the file is left as it is.
    """
    path = Path(output_path)
    if not path.exists():
        return set()
    if not path.is_file():
        raise InputError(f"{path}: the output path is not a file")
    data = path.read_bytes()
    done: set[int] = set()
    offset = 0  # end of the last good line
    lines = data.splitlines(keepends=True)
    for number, raw in enumerate(lines, start=1):
        last = number == len(lines)
        complete = raw.endswith(b"\n")
        try:
            row = json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            row = _BAD
        if row is None:  # blank line
            offset += len(raw)
            continue
        if last and not complete and raw.lstrip().startswith(b"{"):
            if repair:
                logger.warning("%s: dropping a partially written last line (%d bytes); it will be redone",
                               path, len(raw))
                with open(path, "r+b") as f:
                    f.truncate(offset)
            return done
        if row is _BAD or not isinstance(row, dict) or not _is_line_number(row.get("_line")):
            raise InputError(
                f"{path}: line {number} is not an output row of `gpt4video predict` (no integer \"_line\"); "
                "choose another output file"
            )
        done.add(row["_line"])
        offset += len(raw)
    return done


def _is_line_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _parse_row(raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw)
    except UnicodeDecodeError:
        raise _RowProblem("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise _RowProblem(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise _RowProblem(f"expected a JSON object, got {type(row).__name__}")
    return row


def _question(row: dict[str, Any]) -> str:
    for key in ("question", "prompt"):
        if key in row:
            value = row[key]
            if not isinstance(value, str) or not value.strip():
                raise _RowProblem(f"{key!r} must be a non-empty string")
            return value.strip()
    raise _RowProblem("no \"question\" (or \"prompt\") field")


def _video_paths(row: dict[str, Any], video_dir: Path) -> list[str]:
    if "video" in row and "videos" in row:
        raise _RowProblem("give \"video\" or \"videos\", not both")
    if "video" in row:
        values, key = [row["video"]], "video"
    elif "videos" in row:
        values, key = row["videos"], "videos"
        if not isinstance(values, list):
            raise _RowProblem("\"videos\" must be a list of paths")
    else:
        return []
    return _resolve_paths(values, key, video_dir)


def _audio_paths(row: dict[str, Any], video_dir: Path) -> list[str]:
    """The row's ``audio``: one path or a list of paths."""
    values = row.get("audio", [])
    return _resolve_paths(values if isinstance(values, list) else [values], "audio", video_dir)


def _resolve_paths(values: list[Any], key: str, video_dir: Path) -> list[str]:
    paths = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise _RowProblem(f"{key!r} must hold non-empty path strings, got {value!r}")
        path = Path(value.strip()).expanduser()
        paths.append(str(path if path.is_absolute() else video_dir / path))
    return paths


# ============================================================================================
# Writing


def _output_row(line: int, row: dict[str, Any] | None, *, reply: Any = None, error: str | None = None) -> dict[str, Any]:
    """The one place an output row is assembled: the input fields, then the result, then ``_line``."""
    from .pipeline import OUTPUT_KEYS

    out = dict(row or {})
    for key in (*OUTPUT_KEYS, "error", "_line"):
        out.pop(key, None)
    if error is not None:
        out["error"] = error
    else:
        out.update(reply.output.to_dict())
    out["_line"] = line
    return out


def _as_assistant(model: Any) -> Any:
    from .modeling import is_model
    from .pipeline import Assistant

    if isinstance(model, Assistant):
        return model
    if is_model(model):
        return Assistant(model)
    if callable(model):  # a loader: called once, the first time a row needs the model
        return _as_assistant(model())
    raise TypeError(f"expected an Assistant, a GPT4Video or a function returning one, got {type(model).__name__}")


def predict_file(
    assistant_or_model: ModelLike,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    video_dir: str | os.PathLike[str] | None = None,
    params: GenerationParams | None = None,
    progress: bool = True,
    output_dir: str | os.PathLike[str] | None = None,
    gif: bool = False,
) -> PredictSummary:
    """Answer every row of ``input_path`` into ``output_path`` (JSONL), resuming an earlier run.

    ``assistant_or_model``: an :class:`~gpt4video.pipeline.Assistant`, a
    :class:`~gpt4video.modeling.GPT4Video`, or a function with no arguments returning one of them
    (then the model is loaded only if some row still needs an answer). ``params``: a
    :class:`~gpt4video.modeling.GenerationParams` for every row. ``output_dir``: where generated videos are
    saved (with a gif each if ``gif``); None keeps none. See the module docstring for the row formats. Raises InputError if the input file cannot be read, or if ``output_path`` exists and
    is not an output of this function.
    """
    from tqdm.auto import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    rows = _input_rows(input_path)
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise InputError(f"{output_path}: the output file must not be the input file")
    base = Path(video_dir).expanduser() if video_dir is not None else input_path.parent
    if video_dir is not None and not base.is_dir():
        raise InputError(f"{base}: video directory not found")
    base = Path(os.path.abspath(base))

    done = read_done_lines(output_path)
    todo = [(n, raw) for n, raw in rows if n not in done]
    summary = PredictSummary(rows=len(rows), written=0, skipped_existing=len(rows) - len(todo), errors=0)
    if not todo:
        return summary

    output_path.parent.mkdir(parents=True, exist_ok=True)
    assistant = None
    with open(output_path, "a", encoding="utf-8") as out, tqdm(
        total=len(rows), initial=summary.skipped_existing, desc="predict", unit="row", disable=not progress,
    ) as bar:
        for line, raw in todo:
            row: dict[str, Any] | None = None
            try:
                row = _parse_row(raw)
                question = _question(row)
                videos = _video_paths(row, base)
                audio = _audio_paths(row, base)
            except _RowProblem as e:
                result = _output_row(line, row, error=str(e))
            else:
                if assistant is None:  # outside the try: a model that cannot load is not a row's fault
                    assistant = _as_assistant(assistant_or_model)
                assistant.reset()  # every row is its own conversation
                try:
                    sound = {"audio": audio} if audio else {}  # rows without audio keep the plain ask()
                    reply = assistant.ask(question, videos, params, **sound).consume()
                    if output_dir is not None:
                        for video in reply.generated:
                            video.save(output_dir, gif=gif)
                        for image in reply.generated_images:
                            image.save(output_dir)
                    result = _output_row(line, row, reply=reply)
                except InputError as e:  # a video that cannot be read (VideoError), an empty question, ...
                    result = _output_row(line, row, error=str(e))
            if "error" in result:
                summary.errors += 1
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
            summary.written += 1
            bar.update(1)
    return summary
