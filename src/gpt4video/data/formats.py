"""The one example type of training and prediction, and the project's own JSONL schemas.

Every data set, whatever file it came from, becomes a list of :class:`Example`: a conversation
(:class:`~gpt4video.processing.Turn` s whose ``videos`` index the example's ``videos``), the absolute
paths of those videos, where it came from (``source``, ``"file:line"``), its ``kind`` and a ``meta``
dict. :func:`read_jsonl` reads the schemas below; :mod:`gpt4video.data.loaders` reads public formats
(WebVid CSV, VideoChat / LLaVA JSON) into the same type.

JSONL schemas
=============

One JSON object per line; blank lines are ignored. Video paths may be absolute, or relative to the
folder of the JSONL file (or to ``video_dir`` when one is given); ``~`` is expanded. Keys not named
here are ignored. Which schema a row follows is told by its keys (``kind=None``), checked in this
order: ``"turns"`` or ``"conversations"`` → conversation; ``"question"`` → QA; ``"caption"`` or
``"captions"`` → caption. Passing ``kind`` makes every row of the file follow that one schema.

(a) Video-caption pairs (``kind="caption"``)::

    {"video": "clips/7.mp4", "caption": "A red circle moves to the right on a gray background.",
     "captions": ["A red circle moves right on a gray background.", "A red circle slides right ..."]}

    ``video``: str, required. ``caption``: str (required unless ``captions`` is given, then the
    first of them). ``captions``: optional list of str, paraphrases. Becomes a one-turn
    conversation: a user turn with the video and a caption instruction (one of
    :data:`CAPTION_INSTRUCTIONS`, chosen deterministically from ``seed`` and the row's position),
    then an assistant turn with the caption. ``meta``: ``{"format": "caption", "caption",
    "captions" (the caption first, then the other paraphrases, no duplicates), "instruction"}``.
    ``grounding_captions``: optional list of str, the readings stage-0 grounding accepts as equally right
    (e.g. the caption with its objects in every order; the loss takes the closest one); without it,
    only ``caption``. Kept in ``meta["grounding_captions"]``. ``reversed_grounding_captions``: optional list
    of str, the same for the clip played backwards (motions reversed: left ↔ right, up ↔ down, grows ↔
    shrinks); stage 0 with ``time_reversal`` also trains on the clip's frames in reverse order against them.
    Kept in ``meta["reversed_grounding_captions"]``.
    The trainer calls :func:`sample_caption` each epoch to pick another caption and instruction.
    Example kind: ``"caption"``.

(b) Video conversations (``kind="conversation"``)::

    {"videos": ["clips/3.mp4", "clips/4.mp4"],
     "turns": [{"role": "user", "text": "Compare the two clips.", "videos": [0, 1]},
               {"role": "assistant", "text": "The first shows a circle, the second a square."},
               {"role": "user", "text": "Which one moves left?"},
               {"role": "assistant", "text": "The second."}]}

    ``video``: str, or ``videos``: list of str (not both). ``turns`` (alias ``conversations``):
    a non-empty list of turns. A turn is ``{"role": "user" | "assistant", "text": str,
    "videos": [int, ...]}`` (``videos`` optional, only on user turns, 0-based indices into the
    row's videos). The LLaVA spelling ``{"from": "human" | "gpt", "value": str}`` is accepted too,
    and then ``<video>`` / ``<image>`` markers are removed from the text. Each video must be
    referenced exactly once; if no turn references any video, all of them are attached to the
    first user turn. Example kind: ``"conversation"``; ``meta``: ``{"format": "conversation"}``.

(c) Text-only dialogues (``kind="dialogue"``, same schema as (b))::

    {"videos": [], "turns": [{"role": "user", "text": "Show me a purple square that grows."},
                             {"role": "assistant", "text": "Here it is. <video_prompt>A purple square grows on a black background.</video_prompt>"}]}

    A row of schema (b) with no videos (no ``video``/``videos`` key, or an empty list). Example
    kind: ``"dialogue"``; ``meta``: ``{"format": "conversation"}``. With ``kind="dialogue"`` a
    row that has videos is an error.

(d) Question answering (``kind="qa"``)::

    {"video": "clips/7.mp4", "question": "What color is the circle?", "answer": "red", "type": "color"}

    ``video``, ``question``, ``answer``: str, required; ``type``: optional str. Becomes a two-turn
    conversation (user: video + question; assistant: answer). Example kind: ``"conversation"``;
    ``meta``: ``{"format": "qa", "question", "answer", "type"}``.

The files written by :func:`gpt4video.data.synthetic.build_split` (``captions.jsonl``,
``qa.jsonl``, ``dialogues.jsonl``) follow these schemas.

Bad rows
========

A row that cannot be read (bad JSON, not an object, a missing key, a value of the wrong type, a
video file that does not exist, a video index out of range, ...) is skipped and reported: it is
returned as a :class:`RowError` (file, line, message) in :attr:`LoadResult.errors` and logged as a
warning, and a summary is logged after each file. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gpt4video.errors import InputError, VideoError
from gpt4video.jsonl import parsed_lines
from gpt4video.processing import Turn

logger = logging.getLogger(__name__)

__all__ = [
    "CAPTION_INSTRUCTIONS",
    "EXAMPLE_KINDS",
    "ROW_KINDS",
    "Example",
    "LoadResult",
    "RowError",
    "RowProblem",
    "add_error",
    "build_turns",
    "caption_example",
    "choose_instruction",
    "parse_row",
    "read_jsonl",
    "read_many",
    "report",
    "resolve_video",
    "sample_caption",
    "strip_media_markers",
]

#: The kinds of :class:`Example`.
EXAMPLE_KINDS: tuple[str, ...] = ("caption", "conversation", "dialogue")
#: The row schemas :func:`read_jsonl` can be told to expect (``kind=``).
ROW_KINDS: tuple[str, ...] = ("caption", "conversation", "dialogue", "qa")

#: The instructions a video-caption pair is asked with (fixed: changing them changes training data).
CAPTION_INSTRUCTIONS: tuple[str, ...] = (
    "Describe this video.",
    "What happens in this video?",
    "Write a short caption for the video.",
    "Describe the video in one sentence.",
    "Give a brief description of the video.",
)

_MEDIA_MARKER = re.compile(r"<(?:video|image)>[ \t]*\n?")
_ROLES = {
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "ai": "assistant", "model": "assistant",
}


# ============================================================================================
# Types


@dataclass
class Example:
    """One training/prediction example.

    ``turns``: the conversation; a user turn's ``videos`` are indices into ``videos``.
    ``videos``: absolute paths of the clips, each referenced by exactly one turn.
    ``source``: where it came from, ``"file:line"``. ``kind``: one of :data:`EXAMPLE_KINDS`.
    ``meta``: format-specific extras (see the module docstring), e.g. ``captions`` of a caption pair.
    """

    turns: list[Turn]
    videos: list[str] = field(default_factory=list)
    source: str = ""
    kind: str = "conversation"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EXAMPLE_KINDS:
            raise InputError(f"example kind must be one of {', '.join(EXAMPLE_KINDS)}, got {self.kind!r}")
        if not self.turns:
            raise InputError("an example needs at least one turn")
        referenced = sorted(i for t in self.turns for i in t.videos)
        if referenced != list(range(len(self.videos))):
            raise InputError(
                f"the turns reference videos {referenced} but the example has {len(self.videos)}: "
                "each video must be referenced exactly once"
            )

    @property
    def num_videos(self) -> int:
        return len(self.videos)


@dataclass(frozen=True)
class RowError:
    """A row that was skipped: ``file``, ``line`` (1-based) and what is wrong with it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class LoadResult:
    """What reading a data file gave: the ``examples`` and the ``errors`` of the rows skipped."""

    examples: list[Example] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)

    def extend(self, other: LoadResult) -> LoadResult:
        """Append ``other``'s examples and errors (to combine files); returns ``self``."""
        self.examples.extend(other.examples)
        self.errors.extend(other.errors)
        return self

    def counts(self) -> dict[str, int]:
        """How many examples of each kind."""
        return dict(Counter(e.kind for e in self.examples))

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items())) or "none"
        text = f"{len(self.examples)} examples ({kinds})"
        if self.errors:
            text += f", {len(self.errors)} bad rows skipped"
        return text


class RowProblem(Exception):
    """Raised while parsing one row; the reader turns it into a :class:`RowError`."""


# ============================================================================================
# Shared helpers (also used by gpt4video.data.loaders)


def strip_media_markers(text: str) -> str:
    """Remove ``<video>`` / ``<image>`` placeholders (and the line break after one) from ``text``.

    ``<video_prompt>`` and numbered tags are left alone."""
    return _MEDIA_MARKER.sub("", text).strip()


def _stable_int(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose_instruction(seed: int, key: str, epoch: int = 0) -> str:
    """A caption instruction from :data:`CAPTION_INSTRUCTIONS`, fixed by ``(seed, key, epoch)``
    (``key`` names the example, e.g. its ``source``); the same on every machine and run."""
    return CAPTION_INSTRUCTIONS[_stable_int("instruction", seed, epoch, key) % len(CAPTION_INSTRUCTIONS)]


def caption_example(
    video: str, caption: str, *, captions: Sequence[str] = (), source: str = "", seed: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> Example:
    """A caption Example: user (video + instruction) → assistant (caption)."""
    instruction = choose_instruction(seed, source)
    pool = list(dict.fromkeys([caption, *captions]))
    return Example(
        turns=[Turn("user", instruction, [0]), Turn("assistant", caption)],
        videos=[video], source=source, kind="caption",
        meta={"format": "caption", **(meta or {}), "caption": caption, "captions": pool, "instruction": instruction},
    )


def sample_caption(example: Example, *, seed: int, epoch: int) -> Example:
    """For a caption example: a copy with the caption (from ``meta["captions"]``) and the
    instruction picked for this epoch, deterministically from ``(seed, epoch, source)``.
    Any other example is returned unchanged."""
    if example.kind != "caption":
        return example
    pool = list(example.meta.get("captions") or [example.meta.get("caption", example.turns[-1].text)])
    caption = pool[_stable_int("caption", seed, epoch, example.source) % len(pool)]
    instruction = choose_instruction(seed, example.source, epoch)
    return replace(
        example,
        turns=[Turn("user", instruction, [0]), Turn("assistant", caption)],
        meta={**example.meta, "caption": caption, "instruction": instruction},
    )


def resolve_video(value: Any, base_dir: Path, *, check_files: bool, what: str = "video") -> str:
    """A video path from a row → an absolute path string (relative to ``base_dir``); raises
    :class:`RowProblem` if it is not a non-empty string or (with ``check_files``) not a readable file."""
    if not isinstance(value, str) or not value.strip():
        raise RowProblem(f"{what!r} must be a non-empty string (a path), got {_describe(value)}")
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    path = Path(os.path.abspath(path))
    if check_files:
        _check_video_file(path)
    return str(path)


def _check_video_file(path: Path) -> None:
    from gpt4video.video.decode import check_file

    try:
        check_file(path)
    except VideoError as e:
        raise RowProblem(f"video {e.path}: {e.reason}") from None


def _describe(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _string(row: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    if key not in row or row[key] is None:
        if required:
            raise RowProblem(f"missing key {key!r}")
        return None
    value = row[key]
    if not isinstance(value, str):
        raise RowProblem(f"{key!r} must be a string, got {_describe(value)}")
    return value


def _string_list(row: Mapping[str, Any], key: str) -> list[str]:
    value = row[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowProblem(f"{key!r} must be a list of strings, got {_describe(value)}")
    return value


# ============================================================================================
# Row parsers


def _detect_kind(row: Mapping[str, Any]) -> str:
    if "turns" in row or "conversations" in row:
        return "conversation"
    if "question" in row:
        return "qa"
    if "caption" in row or "captions" in row:
        return "caption"
    raise RowProblem(
        "cannot tell the row's schema: expected 'turns'/'conversations' (conversation), "
        f"'question' (QA) or 'caption' (caption pair); the row has keys {sorted(row)}"
    )


def _parse_caption(row: Mapping[str, Any], base: Path, check: bool, source: str, seed: int) -> Example:
    caption = _string(row, "caption", required="captions" not in row)
    paraphrases = _string_list(row, "captions") if "captions" in row else []
    if caption is None:
        if not paraphrases:
            raise RowProblem("'captions' is empty and there is no 'caption'")
        caption = paraphrases[0]
    if not caption.strip():
        raise RowProblem("'caption' is empty")
    video = resolve_video(_string(row, "video"), base, check_files=check)
    meta = {}
    for key in ("grounding_captions", "reversed_grounding_captions"):
        if key in row:
            readings = [c.strip() for c in _string_list(row, key) if c.strip()]
            if not readings:
                raise RowProblem(f"'{key}' is empty")
            meta[key] = readings
    return caption_example(video, caption.strip(), captions=[c.strip() for c in paraphrases if c.strip()],
                           source=source, seed=seed, meta=meta or None)


def _parse_qa(row: Mapping[str, Any], base: Path, check: bool, source: str) -> Example:
    question = _string(row, "question")
    answer = _string(row, "answer")
    qa_type = _string(row, "type", required=False)
    video = resolve_video(_string(row, "video"), base, check_files=check)
    return Example(
        turns=[Turn("user", question, [0]), Turn("assistant", answer)],
        videos=[video], source=source, kind="conversation",
        meta={"format": "qa", "question": question, "answer": answer, "type": qa_type},
    )


def _parse_turn(index: int, raw: Any) -> tuple[str, str, list[int]]:
    where = f"turn {index}"
    if not isinstance(raw, dict):
        raise RowProblem(f"{where} must be an object, got {_describe(raw)}")
    llava = "from" in raw and "role" not in raw
    role_key, text_key = ("from", "value") if llava else ("role", "text")
    if role_key not in raw:
        raise RowProblem(f"{where}: missing key {role_key!r}")
    role = raw[role_key]
    if not isinstance(role, str) or role.lower() not in _ROLES:
        raise RowProblem(f"{where}: role must be 'user' or 'assistant', got {_describe(role)}")
    if text_key not in raw:
        raise RowProblem(f"{where}: missing key {text_key!r}")
    text = raw[text_key]
    if not isinstance(text, str):
        raise RowProblem(f"{where}: {text_key!r} must be a string, got {_describe(text)}")
    videos = raw.get("videos") or []
    if not isinstance(videos, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in videos):
        raise RowProblem(f"{where}: 'videos' must be a list of integer indices, got {_describe(videos)}")
    return _ROLES[role.lower()], strip_media_markers(text) if llava else text, list(videos)


def build_turns(raw_turns: Sequence[tuple[str, str, list[int]]], num_videos: int) -> list[Turn]:
    """``(role, text, video indices)`` → :class:`Turn` s, checking the indices against ``num_videos``;
    with no index anywhere, every video is attached to the first user turn."""
    if not raw_turns:
        raise RowProblem("the conversation has no turns")
    referenced = [i for _, _, vids in raw_turns for i in vids]
    for i in referenced:
        if not 0 <= i < num_videos:
            raise RowProblem(f"video index {i} is out of range: the row has {num_videos} video(s)")
    turns_spec = [list(t) for t in raw_turns]
    if not referenced and num_videos:
        first_user = next((t for t in turns_spec if t[0] == "user"), None)
        if first_user is None:
            raise RowProblem("the row has videos but no user turn to attach them to")
        first_user[2] = list(range(num_videos))
    elif referenced:
        if sorted(referenced) != list(range(num_videos)):
            counts = Counter(referenced)
            twice = sorted(i for i, n in counts.items() if n > 1)
            unused = sorted(set(range(num_videos)) - set(counts))
            detail = f"referenced more than once: {twice}" if twice else f"never referenced: {unused}"
            raise RowProblem(f"each video must be referenced by exactly one turn; {detail}")
    turns = []
    for i, (role, text, vids) in enumerate(turns_spec):
        if vids and role != "user":
            raise RowProblem(f"turn {i}: only user turns can carry videos")
        turns.append(Turn(role, text, vids))
    return turns


def _parse_conversation(row: Mapping[str, Any], base: Path, check: bool, source: str, kind: str) -> Example:
    if "turns" in row and "conversations" in row:
        raise RowProblem("give either 'turns' or 'conversations', not both")
    if "turns" not in row and "conversations" not in row:
        raise RowProblem("missing key 'turns' (or 'conversations')")
    key = "turns" if "turns" in row else "conversations"
    raw_turns = row[key]
    if not isinstance(raw_turns, list):
        raise RowProblem(f"{key!r} must be a list of turns, got {_describe(raw_turns)}")
    if "video" in row and "videos" in row:
        raise RowProblem("give either 'video' or 'videos', not both")
    if row.get("video") is not None:
        names = [row["video"]]
    elif row.get("videos") is not None:
        names = _string_list(row, "videos")
    else:
        names = []
    if kind == "dialogue" and names:
        raise RowProblem(f"a text-only dialogue cannot have videos, got {len(names)}")
    parsed = [_parse_turn(i, t) for i, t in enumerate(raw_turns)]
    turns = build_turns(parsed, len(names))
    videos = [resolve_video(v, base, check_files=check, what="videos" if "videos" in row else "video")
              for v in names]
    return Example(turns=turns, videos=videos, source=source, kind="conversation" if videos else "dialogue",
                   meta={"format": "conversation"})


def parse_row(
    row: Any, *, base_dir: Path, source: str, kind: str | None = None, check_files: bool = True, seed: int = 0,
) -> Example:
    """One JSONL row (already decoded) → :class:`Example`; raises :class:`RowProblem`."""
    if not isinstance(row, dict):
        raise RowProblem(f"expected a JSON object, got {type(row).__name__}")
    schema = kind or _detect_kind(row)
    try:
        if schema == "caption":
            return _parse_caption(row, base_dir, check_files, source, seed)
        if schema == "qa":
            return _parse_qa(row, base_dir, check_files, source)
        return _parse_conversation(row, base_dir, check_files, source, schema)
    except InputError as e:  # a Turn or Example refusing its values
        raise RowProblem(str(e)) from None


# ============================================================================================
# Reading files


def report(result: LoadResult, file: str) -> LoadResult:
    """Log the summary of reading ``file`` (a warning when rows were skipped)."""
    if result.errors:
        logger.warning("%s: %s (see the warnings above)", file, result.summary())
    else:
        logger.info("%s: %s", file, result.summary())
    return result


def add_error(result: LoadResult, file: str, line: int, message: str) -> None:
    """Record and log one skipped row."""
    error = RowError(file, line, message)
    result.errors.append(error)
    logger.warning("skipping row %s", error)


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in ROW_KINDS:
        raise InputError(f"kind must be one of {', '.join(ROW_KINDS)} or None, got {kind!r}")


def _base_dir(path: Path, video_dir: str | os.PathLike[str] | None) -> Path:
    return Path(os.path.abspath(Path(video_dir).expanduser() if video_dir is not None else path.parent))


def _open_data_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"{file}: data file not found")
    if not file.is_file():
        raise InputError(f"{file}: not a file")
    return file


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    video_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
    seed: int = 0,
) -> LoadResult:
    """Read a JSONL file of the schemas in the module docstring.

    Args:
        path: The ``.jsonl`` file.
        kind: ``"caption"``, ``"conversation"``, ``"dialogue"`` or ``"qa"`` to require that schema
            of every row; ``None`` tells each row's schema from its keys.
        video_dir: The folder relative video paths start from (default: the file's folder).
        check_files: Check that every video file exists and is readable (no decoding).
        seed: Fixes the caption instruction of each caption pair.

    Returns:
        A :class:`LoadResult`; every skipped row is in ``errors`` (and logged).

    Raises:
        InputError: the file itself cannot be read, or ``kind`` is unknown.
    """
    _check_kind(kind)
    file = _open_data_file(path)
    base = _base_dir(file, video_dir)
    name = str(path)
    result = LoadResult()
    for number, row in parsed_lines(file):
        if isinstance(row, UnicodeDecodeError):
            add_error(result, name, number, f"not UTF-8 text ({row.reason} at byte {row.start})")
            continue
        if isinstance(row, json.JSONDecodeError):
            add_error(result, name, number, f"bad JSON: {row.msg} (column {row.colno})")
            continue
        try:
            result.examples.append(parse_row(row, base_dir=base, source=f"{name}:{number}", kind=kind,
                                             check_files=check_files, seed=seed))
        except RowProblem as e:
            add_error(result, name, number, str(e))
    return report(result, name)


def read_many(paths: Iterable[str | os.PathLike[str]], **kwargs: Any) -> LoadResult:
    """:func:`read_jsonl` over several files, results combined in order."""
    combined = LoadResult()
    for p in paths:
        combined.extend(read_jsonl(p, **kwargs))
    return combined
