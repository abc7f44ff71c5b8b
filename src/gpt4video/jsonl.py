"""Reads and writes JSONL files (one JSON object a line, UTF-8); a bad line is an
:class:`~gpt4video.errors.InputError` naming the file and the line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gpt4video.config import atomic_write_text
from gpt4video.errors import InputError

__all__ = ["append_jsonl", "jsonl_text", "parsed_lines", "read_jsonl", "read_text", "write_jsonl"]


def read_text(path: str | os.PathLike[str]) -> str:
    """A whole UTF-8 text file (a byte-order mark is dropped); one InputError naming the file when it cannot be
    read or is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def parsed_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, JSON value)`` of each non-blank line of a JSONL file, in order (a byte-order mark
    is ignored). A line that is not UTF-8 or not JSON gives its ``UnicodeDecodeError`` or
    ``json.JSONDecodeError`` as the value, so the caller decides whether to stop or skip it. A file that
    cannot be opened is an :class:`~gpt4video.errors.InputError`."""
    try:
        handle = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, e
                continue
            if number == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as e:
                yield number, e


def read_jsonl(path: str | os.PathLike[str], *, what: str = "JSON object") -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSONL file in order, skipping blank lines.

    ``what`` names what each line holds ("QA row", "benchmark item") in the error a bad line raises:
    ``InputError("FILE:LINE: ...")`` for a line that is not UTF-8, not JSON or not an object, and
    ``InputError("FILE: ...")`` for a file that cannot be opened.
    """
    for number, row in parsed_lines(path):
        if isinstance(row, UnicodeDecodeError):
            raise InputError(f"{path}:{number}: not UTF-8 text ({row.reason} at byte {row.start})")
        if isinstance(row, json.JSONDecodeError):
            raise InputError(f"{path}:{number}: not valid JSON ({row.msg}); expected a {what}")
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a {what} (a JSON object), got {type(row).__name__}")
        yield row


def jsonl_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """``rows`` as JSONL text: one ``json.dumps(row, ensure_ascii=False)`` a line, each ending in a newline."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` to ``path`` as JSONL through a temporary file and a rename (parent folders are made).
    Returns the path."""
    path = Path(path)
    atomic_write_text(path, jsonl_text(rows))
    return path


def append_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Append ``rows`` to ``path`` as JSONL lines, creating the file if it does not exist."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(jsonl_text(rows))
