"""The GPT4Video-50k recipe (paper §3.3 / §4.1) on any video-caption file: a writer LLM composes, for each clip,
a multi-turn dialogue about it that includes requests for new videos answered with
``<video_prompt>…</video_prompt>``, shown the clip's caption and the captions of related clips.

- **Related captions**: the ``related`` nearest captions of other clips by cosine similarity of the packaged
  all-MiniLM-L6-v2 sentence embeddings (``gpt4video[safety]``), so a request can draw on what similar videos show.
- **The writer**: any OpenAI-compatible chat endpoint (:class:`~gpt4video.config.WriterConfig`), asked for the
  dialogue as a JSON list of ``{"role", "text"}`` turns (:data:`SYSTEM_PROMPT`, :func:`writer_prompt`).
- **Validation** (:func:`parse_dialogue`): JSON (a fenced code block is unwrapped), turns alternating user /
  assistant from a user turn to an assistant turn, every text non-empty, at least one assistant turn with a video
  prompt, every video prompt non-empty and closed, none in user turns; the row must then read as a conversation
  of the project's schema (:func:`~gpt4video.data.formats.parse_row`). An invalid dialogue, an HTTP error or a
  timeout is asked again (``retries``), then the clip is reported as failed and left for a rerun.
- **Deduplication**: a dialogue whose turns (lower case, spaces collapsed) equal an earlier one's is dropped.
- **Output**: one row of schema (b) a clip, appended and flushed as it comes: ``videos`` (the clip),
  ``turns`` (the clip shown in the first user turn), ``caption``, ``related_captions``, ``writer`` and ``_line``
  (the clip's 1-based position among the file's caption pairs). A rerun skips the clips already written
  (:func:`~gpt4video.batch.read_done_lines`, which also drops a line torn by a crash).

Safety dialogues (refusals of harmful requests and harmless look-alikes) come from the packaged prompt sets,
as before: ``gpt4video data safety``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpt4video.config import DialogueRecipeConfig, WriterConfig
from gpt4video.endpoint import AttemptFailed, ChatEndpoint
from gpt4video.errors import InputError

__all__ = ["SYSTEM_PROMPT", "DialogueSummary", "parse_dialogue", "related_captions", "write_dialogues",
           "writer_prompt"]

SYSTEM_PROMPT = (
    "You write training conversations for a video assistant that understands the videos users share and can also "
    "make new videos. When the user asks for a new video, the assistant replies briefly and puts one detailed "
    "description of the video to make (subjects, appearance, motion, setting, camera) between <video_prompt> and "
    "</video_prompt>. The assistant only states what the video description supports."
)

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_OPEN, _CLOSE = "<video_prompt>", "</video_prompt>"
_PROMPT = re.compile(r"<video_prompt>(.*?)</video_prompt>", re.DOTALL)


def writer_prompt(caption: str, related: Sequence[str], exchanges: int) -> str:
    """The user message that asks the writer for one dialogue about the clip ``caption`` describes."""
    lines = [f"A user has shared a video. Its description: {caption}", ""]
    if related:
        lines += ["Descriptions of related videos:", *[f"- {r}" for r in related], ""]
    lines += [
        f"Write a conversation of {exchanges} exchanges (a user turn, then an assistant turn) about the shared video. "
        "Mix questions about what it shows with at least one request for a new video (a variation of this one, or "
        "one that borrows from the related videos), and answer each such request with a <video_prompt>...</video_prompt>.",
        'Reply with JSON only: a list of objects {"role": "user" or "assistant", "text": "..."}, starting with the '
        "user and alternating.",
    ]
    return "\n".join(lines)


def parse_dialogue(reply: str) -> list[dict[str, str]]:
    """The turns of a writer's reply, checked (see the module docstring); ValueError naming what is wrong."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from None
    if isinstance(value, dict):
        value = next((value[k] for k in ("turns", "conversation", "dialogue") if k in value), value)
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError("not a list of at least two turns")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("text"), str) or not turn["text"].strip():
            raise ValueError(f"turn {i} is not an object with a non-empty 'text'")
        role = turn.get("role")
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise ValueError(f"turn {i} is {role!r}; turns must alternate user, assistant from a user turn")
        turns.append({"role": role, "text": turn["text"].strip()})
    if turns[-1]["role"] != "assistant":
        raise ValueError("the last turn is not the assistant's")
    wrote = 0
    for i, turn in enumerate(turns):
        opened, closed = turn["text"].count(_OPEN), turn["text"].count(_CLOSE)
        if turn["role"] == "user" and (opened or closed):
            raise ValueError(f"turn {i}: a video prompt in a user turn")
        prompts = _PROMPT.findall(turn["text"])
        if any(not p.strip() for p in prompts):
            raise ValueError(f"turn {i}: an empty video prompt")
        if opened != closed or len(prompts) != opened:
            raise ValueError(f"turn {i}: a video prompt is not closed")
        wrote += len(prompts)
    if not wrote:
        raise ValueError("no assistant turn makes a video (<video_prompt>...</video_prompt>)")
    return turns


def related_captions(captions: Sequence[str], k: int, embed: Callable[[Sequence[str]], np.ndarray],
                     block: int = 1024) -> list[list[str]]:
    """For each caption, the ``k`` most similar other (distinct) captions by cosine of ``embed``'s unit vectors."""
    unique = list(dict.fromkeys(captions))
    if k <= 0 or len(unique) < 2:
        return [[] for _ in captions]
    vectors = np.asarray(embed(unique), dtype=np.float32)  # (U, D), unit rows
    nearest: list[list[str]] = []
    for start in range(0, len(unique), block):
        sims = vectors[start:start + block] @ vectors.T  # (B, U)
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        nearest += [[unique[j] for j in row] for row in order]
    index = {c: i for i, c in enumerate(unique)}
    return [nearest[index[c]] for c in captions]


def _minilm_embed(texts: Sequence[str]) -> np.ndarray:
    from gpt4video.safety.text import embed, load_embedder

    return embed(load_embedder(), texts)


def _dialogue_key(turns: Sequence[dict[str, str]]) -> str:
    text = "\n".join(f"{t['role']}:{' '.join(t['text'].lower().split())}" for t in turns)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class DialogueSummary:
    """``clips``: caption pairs taken; ``written``: dialogues written by this run; ``skipped_existing``: clips
    already in the output; ``failed``: clips without a valid dialogue after the retries (``failures``: the first
    few reasons); ``duplicates``: valid dialogues dropped as copies of earlier ones."""

    clips: int
    written: int = 0
    skipped_existing: int = 0
    failed: int = 0
    duplicates: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


def _caption_pairs(path: str) -> list[tuple[str, str]]:
    """(video path, caption) of each caption pair in a JSONL or WebVid CSV file."""
    from gpt4video.data.loaders import load_dataset

    result = load_dataset(path, check_files=False)
    pairs = [(e.videos[0], e.meta["caption"]) for e in result.examples if e.kind == "caption"]
    if not pairs:
        raise InputError(f"{path}: no video-caption pairs (rows with 'video' and 'caption') in it")
    return pairs


def write_dialogues(recipe: DialogueRecipeConfig, writer: WriterConfig, *, progress: bool = True,
                    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
                    backoff: float = 1.0) -> DialogueSummary:
    """Write a dialogue for every clip of ``recipe.captions`` into ``recipe.out`` (see the module docstring).
    ``embed``: unit sentence embeddings (default: the packaged MiniLM, loaded only if ``recipe.related`` > 0)."""
    from tqdm.auto import tqdm

    from gpt4video.batch import read_done_lines
    from gpt4video.data.formats import RowProblem, parse_row
    from gpt4video.evaluation.synthetic import _spread
    from gpt4video.jsonl import parsed_lines

    if recipe.captions is None or recipe.out is None:
        raise InputError("data dialogues needs --captions FILE and --out FILE")
    if writer.base_url is None or writer.model is None:
        raise InputError("data dialogues needs --writer-base-url and --writer-model")
    numbered = list(enumerate(_caption_pairs(recipe.captions), start=1))
    numbered = _spread(numbered, recipe.max_clips)
    out = Path(recipe.out).expanduser()
    done = read_done_lines(out)
    seen = {_dialogue_key(row["turns"]) for _, row in parsed_lines(out) if isinstance(row, dict)
            and isinstance(row.get("turns"), list)} if out.is_file() else set()
    todo = [(n, pair) for n, pair in numbered if n not in done]
    summary = DialogueSummary(clips=len(numbered), skipped_existing=len(numbered) - len(todo))
    if not todo:
        return summary
    related = related_captions([pair[1] for _, pair in numbered], recipe.related,
                               embed or _minilm_embed) if recipe.related else [[] for _ in numbered]
    related_of = {n: r for (n, _), r in zip(numbered, related)}
    endpoint = ChatEndpoint(writer.base_url, writer.model, api_key=writer.api_key, timeout=writer.timeout,
                            what="the writer")
    lock = threading.Lock()

    def compose(line: int, video: str, caption: str) -> tuple[int, list[dict[str, str]] | None, str]:
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": writer_prompt(caption, related_of[line], recipe.exchanges)}]
        error = ""
        for attempt in range(writer.retries + 1):
            if attempt and backoff:
                time.sleep(backoff * attempt)
            try:
                reply = endpoint.complete(messages, temperature=writer.temperature)  # Unreachable stops the run
            except AttemptFailed as e:
                error = str(e)
                continue
            try:
                turns = parse_dialogue(reply)
                parse_row(_row(line, video, caption, turns), base_dir=out.parent, source=f"{out}:{line}",
                          check_files=False)
            except (ValueError, RowProblem) as e:
                error = f"invalid dialogue: {e}"
                continue
            return line, turns, ""
        return line, None, f"after {writer.retries + 1} attempts: {error}"

    def _row(line: int, video: str, caption: str, turns: list[dict[str, str]]) -> dict[str, Any]:
        shown = [{**t, "videos": [0]} if i == 0 else t for i, t in enumerate(turns)]
        return {"videos": [video], "turns": shown, "caption": caption, "related_captions": related_of[line],
                "writer": writer.model, "_line": line}

    out.parent.mkdir(parents=True, exist_ok=True)
    pairs = dict(todo)
    with open(out, "a", encoding="utf-8") as sink, \
            tqdm(total=len(numbered), initial=summary.skipped_existing, desc="dialogues", unit="clip",
                 disable=not progress) as bar, ThreadPoolExecutor(max_workers=writer.concurrency) as pool:
        futures = [pool.submit(compose, n, *pair) for n, pair in todo]
        try:
            for future in as_completed(futures):
                line, turns, error = future.result()
                with lock:
                    if turns is None:
                        summary.failed += 1
                        if len(summary.failures) < 10:
                            summary.failures.append({"line": line, "video": pairs[line][0], "error": error})
                    elif _dialogue_key(turns) in seen:
                        summary.duplicates += 1
                    else:
                        seen.add(_dialogue_key(turns))
                        sink.write(json.dumps(_row(line, *pairs[line], turns), ensure_ascii=False) + "\n")
                        sink.flush()
                        summary.written += 1
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return summary
